"""The source text's claim, end to end: managers placed by Auto Scaling (local cloud) and joined by the real
on_launch handler into a real swarm. 5 managers over three AZs land 2-2-1 and survive losing an AZ with
2 managers; over two AZs they land 3-2 and die with the bigger AZ — and then a new launch waits (hook kept
alive) instead of being abandoned."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from autojoin.domain.model import Role
from autojoin.errors import NoLeader
from autojoin.lab import Lab
from autojoin.lab.e2e import E2E, e2e_cloud

from .swarm_support import eventually, raises_eventually

pytestmark = pytest.mark.swarm
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def grow_managers(kit: E2E, n: int) -> dict[str, int]:
    cloud = kit.cloud
    cloud.set_desired(cloud.stack.manager_group, n)
    cloud.run_until_idle(1800)
    assert Counter(r.result for r in cloud.lifecycle_results) == Counter({"CONTINUE": n})
    members = list(kit.orchestrator.members())
    assert sum(m.role is Role.MANAGER and m.reachable for m in members) == n
    return dict(Counter(m.labels["az"] for m in members))


def test_2_2_1_survives_losing_an_az_with_two_managers(lab: Lab) -> None:
    with e2e_cloud(
        lab, ("us-east-1d", "us-east-1e", "us-east-1f"), cluster="spread", seed=21, template=TEMPLATE
    ) as kit:
        layout = grow_managers(kit, 5)
        assert sorted(layout.values()) == [1, 2, 2]
        doomed = min(az for az, n in layout.items() if n == 2)
        lost = {n.instance_id for n in lab.cut_zone(doomed)}
        lost_ids = {iid for iid, node in kit.runner.nodes.items() if node.instance_id in lost}
        try:
            orch = kit.orchestrator

            def survivors_lead() -> bool:
                members = list(orch.members())  # NoLeader here would mean quorum was lost
                cut = [m for m in members if m.instance_id in lost_ids]
                alive = [m for m in members if m.instance_id not in lost_ids]
                return (
                    len(cut) == 2 and not any(m.reachable for m in cut) and sum(m.leader for m in alive) == 1
                )

            eventually(survivors_lead, what="2-2-1 minus a 2-manager AZ: the other 3 keep a leader")
            # and the cluster still accepts changes
            survivor = next(m for m in orch.members() if m.instance_id not in lost_ids)
            orch.label(survivor.node_id, {"checked": "after-az-loss"})
            assert orch.member(survivor.node_id).labels["checked"] == "after-az-loss"
        finally:
            lab.heal_zone(doomed)


def test_3_2_dies_with_its_bigger_az_and_a_new_launch_waits(lab: Lab) -> None:
    with e2e_cloud(lab, ("us-east-1a", "us-east-1b"), cluster="lopsided", seed=32, template=TEMPLATE) as kit:
        layout = grow_managers(kit, 5)
        assert sorted(layout.values()) == [2, 3]
        bigger = next(az for az, n in layout.items() if n == 3)
        lab.cut_zone(bigger)
        try:
            raises_eventually(
                kit.orchestrator.members, NoLeader, what="3-2 without its 3-manager AZ: no leader"
            )
            cloud = kit.cloud
            cloud.set_desired(cloud.stack.worker_group, 1)
            cloud.run_until_idle(60)
            launch = [i for i in cloud.invocations if i.function == "OnLaunchFunction"][-1]
            assert launch.result["outcome"] == "pending" and launch.result["error"] in {
                "NoLeader",
                "Unreachable",
            }
            worker = cloud.instances(cloud.stack.worker_group)[0]
            assert worker.lifecycle_state == "Pending:Wait"  # kept alive, not abandoned into a churn loop
        finally:
            lab.heal_zone(bigger)
