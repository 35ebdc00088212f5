"""The reconciler's AZ cases end to end on a real swarm: Auto Scaling, the template's handlers and the
reconciler's schedule run on the local cloud; the cluster is real dockerd nodes (one per instance, in its
AZ) that the production SwarmOrchestrator reaches through the lab's runner.

* 2-2-1 loses the AZ holding 2 managers for half an hour (simulated) and gets it back: the swarm keeps a
  leader, the dead managers are removed from Raft (the guard's cleanup, called by the reconciler), and it
  ends 2-2-1 again with 5 voters, all reachable.
* 5 managers as 3-2 over two AZs get a third AZ: the reconciler surges into it and retires one of the
  bigger AZ's through the group (graceful removal by on_terminate): 2-2-1 on the real swarm.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from autojoin.domain.model import Role
from autojoin.lab import Lab
from autojoin.lab.e2e import E2E, e2e_cloud

from .swarm_support import eventually

pytestmark = pytest.mark.swarm
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def grow_managers(kit: E2E, n: int) -> dict[str, int]:
    cloud = kit.cloud
    cloud.set_desired(cloud.stack.manager_group, n)
    cloud.run_until_idle(1800)
    members = list(kit.orchestrator.members())
    assert sum(m.role is Role.MANAGER and m.reachable for m in members) == n
    return dict(Counter(m.labels["az"] for m in members))


def real_managers(kit: E2E) -> list[tuple[str, bool, bool]]:
    """(az, reachable, leader) of every manager in the real swarm's member list (Down ones included)."""
    return [
        (m.labels.get("az", "?"), m.reachable, m.leader)
        for m in kit.orchestrator.members()
        if m.role is Role.MANAGER or m.in_raft
    ]


def run_for(kit: E2E, seconds: float, step: float = 60.0) -> None:
    """Let simulated time pass in steps, the real swarm catching up in between (it lives in real time)."""
    passed = 0.0
    while passed < seconds:
        kit.cloud.advance(step)
        passed += step


def test_2_2_1_loses_an_az_for_half_an_hour_and_ends_2_2_1_with_5_voters(lab: Lab) -> None:
    zones = ("us-east-1a", "us-east-1b", "us-east-1c")
    with e2e_cloud(lab, zones, cluster="outage", seed=41, template=TEMPLATE) as kit:
        layout = grow_managers(kit, 5)
        assert sorted(layout.values()) == [1, 2, 2]
        cloud = kit.cloud
        cloud.enable_schedules()
        doomed = min(az for az, n in layout.items() if n == 2)
        lab.cut_zone(doomed)
        cloud.zone_outage(doomed)  # EC2 side: the instances are down; Auto Scaling replaces them
        try:

            def three_voters_with_a_leader() -> bool:
                managers = real_managers(kit)
                return (
                    len(managers) == 3
                    and all(r for _, r, _ in managers)
                    and sum(ld for *_, ld in managers) == 1
                )

            for _ in range(30):  # half an hour, a minute at a time
                run_for(kit, 60)
                managers = real_managers(kit)  # raises NoLeader if quorum were lost
                assert sum(ld for *_, ld in managers) == 1
            eventually(three_voters_with_a_leader, what="the dead managers removed from Raft, a leader kept")
        finally:
            lab.heal_zone(doomed)
        cloud.zone_recover(doomed)

        def back_to_2_2_1() -> bool:
            run_for(kit, 60)
            managers = real_managers(kit)
            return (
                len(managers) == 5
                and all(r for _, r, _ in managers)
                and sorted(Counter(az for az, _, _ in managers).values()) == [1, 2, 2]
            )

        eventually(back_to_2_2_1, budget=600, interval=2, what="2-2-1 again with 5 voters, all reachable")
        assert sum(ld for *_, ld in real_managers(kit)) == 1


def test_3_2_gets_a_third_az_and_becomes_2_2_1(lab: Lab) -> None:
    zones = ("us-east-1d", "us-east-1e", "us-east-1f")
    with e2e_cloud(lab, zones, cluster="third", seed=42, template=TEMPLATE) as kit:
        cloud = kit.cloud
        asg = cloud.session.client("autoscaling")
        ec2 = cloud.session.client("ec2")
        subnet = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
        group = cloud.stack.manager_group
        asg.update_auto_scaling_group(
            AutoScalingGroupName=group, VPCZoneIdentifier=f"{subnet[zones[0]]},{subnet[zones[1]]}"
        )
        layout = grow_managers(kit, 5)
        assert sorted(layout.values()) == [2, 3]
        asg.update_auto_scaling_group(
            AutoScalingGroupName=group, VPCZoneIdentifier=",".join(subnet[z] for z in zones)
        )
        cloud.enable_schedules()
        seen: list[list[int]] = []

        def at_2_2_1() -> bool:
            run_for(kit, 60)
            managers = real_managers(kit)
            counts = Counter(az for az, r, _ in managers if r)
            seen.append(sorted(counts.values(), reverse=True))
            return len(managers) == 5 and sorted(counts.values()) == [1, 2, 2]

        eventually(at_2_2_1, budget=900, interval=2, what="3-2 + a third AZ -> 2-2-1 on the real swarm")
        # never worse than the start: every layout seen on the way had at most 3 in one AZ of >= 5 managers
        assert all(shape[0] <= 3 for shape in seen), seen
        assert sum(1 for m in kit.orchestrator.members() if m.leader) == 1
