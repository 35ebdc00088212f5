"""Auto Scaling's own AZ rebalancing and suspended processes, each test reproducing a rule of the Amazon
EC2 Auto Scaling User Guide (page and section named in the test)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.localcloud.fixtures.engine_kit import (
    Recorder,
    engine_cloud,
    first_suggestion,
    in_service,
    wire_lifecycle,
)

POLICY = "TerminationPolicyFunction"


def _zones(cloud: Any, group: str) -> dict[str, str]:
    return {i.instance_id: i.az for i in cloud.instances(group) if i.lifecycle_state == "InService"}


def _unbalance_by_decrement(cloud: Any, group: str) -> None:
    """2-2-2, then both instances of one AZ terminated with decrement: 0-2-2 at desired 4."""
    cloud.set_desired(group, 6)
    cloud.run_until_idle(60)
    zones = _zones(cloud, group)
    first = sorted(set(zones.values()))[0]
    for iid in sorted(i for i, z in zones.items() if z == first):
        cloud.terminate_instance(iid, decrement=True)
    cloud.run_until_idle(0)


def test_a_terminate_with_decrement_that_unbalances_zones_starts_a_rebalance_launch_first() -> None:
    # User Guide, "Control which Auto Scaling instances terminate during scale in", Availability Zone
    # rebalancing: explicitly terminating instances and decrementing desired capacity can unbalance the
    # group; Auto Scaling compensates by launching in the AZ with the fewest instances before it
    # terminates elsewhere (the terminate hooks run, as for any termination).
    with engine_cloud() as (cloud, stack):
        handlers = wire_lifecycle(cloud)
        group = stack.worker_group
        _unbalance_by_decrement(cloud, group)
        assert sorted(cloud.layout(group).values()) == [0, 2, 2]
        order: list[str] = []
        cloud.subscribe(lambda what, iid: order.append(what))
        hooks_before = len(handlers["OnTerminateFunction"].events)
        cloud.run_until_idle(600)
        assert sorted(cloud.layout(group).values()) == [1, 1, 2]
        assert [w for w in order if w in {"launched", "terminated"}] == ["launched", "terminated"]
        assert len(handlers["OnTerminateFunction"].events) == hooks_before + 1
        assert len(in_service(cloud, group)) == 4


def test_a_policy_answer_that_unbalances_zones_is_rebalanced_after_asking_with_cause_rebalance() -> None:
    # User Guide, "Create a custom termination policy with Lambda", Considerations: if the answer's
    # terminations put the AZs out of balance, Auto Scaling first invokes the function (Cause REBALANCE)
    # to see whether instances are ready to be terminated; if so it launches first, then a scale-in
    # (Cause SCALE_IN) takes the surplus.
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        group = stack.manager_group
        cloud.set_desired(group, 5)  # 2-2-1
        cloud.run_until_idle(60)
        zones = _zones(cloud, group)
        per_zone = Counter(zones.values())
        lone = next(i for i, z in zones.items() if per_zone[z] == 1)

        def policy(event: dict[str, Any]) -> dict[str, list[str]]:
            if not cloud.policy_calls:
                return {"InstanceIDs": [lone]}  # the first scale-in: empty the small AZ
            return first_suggestion(event)

        cloud.register_handler(POLICY, Recorder(policy))
        cloud.set_desired(group, 4)
        cloud.run_until_idle(3600)
        assert [c.cause for c in cloud.policy_calls] == ["SCALE_IN", "REBALANCE", "SCALE_IN"]
        assert sorted(cloud.layout(group).values()) == [1, 1, 2]
        assert cloud.layout(group)[zones[lone]] == 1


def test_a_refused_rebalance_launches_nothing() -> None:
    # Same section: the launch happens only "if there are instances ready to be terminated".
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        group = stack.manager_group
        cloud.register_handler(POLICY, Recorder(lambda e: {"InstanceIDs": []}))
        _unbalance_by_decrement(cloud, group)
        launched: list[str] = []
        cloud.subscribe(lambda what, iid: launched.append(iid) if what == "launched" else None)
        cloud.run_until_idle(600)
        assert launched == []
        assert {c.cause for c in cloud.policy_calls} == {"REBALANCE"} and len(cloud.policy_calls) > 1
        assert sorted(cloud.layout(group).values()) == [0, 2, 2]


def test_suspended_az_rebalance_does_nothing_until_resumed() -> None:
    # User Guide, "Suspend and resume Amazon EC2 Auto Scaling processes", AZRebalance: the group does not
    # redistribute instances while suspended; once resumed it rebalances (Launch, then Terminate).
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        group = stack.worker_group
        asg = cloud.session.client("autoscaling")
        asg.suspend_processes(AutoScalingGroupName=group, ScalingProcesses=["AZRebalance"])
        _unbalance_by_decrement(cloud, group)
        cloud.run_until_idle(3600)
        assert sorted(cloud.layout(group).values()) == [0, 2, 2]
        asg.resume_processes(AutoScalingGroupName=group, ScalingProcesses=["AZRebalance"])
        cloud.run_until_idle(600)
        assert sorted(cloud.layout(group).values()) == [1, 1, 2]


def test_suspended_terminate_lets_the_rebalance_launch_but_not_terminate() -> None:
    # Same page, Terminate: AZRebalance "can launch new instances without terminating the old ones"; the
    # group stays above desired until Terminate resumes, then it scales back in.
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        group = stack.worker_group
        asg = cloud.session.client("autoscaling")
        _unbalance_by_decrement(cloud, group)
        asg.suspend_processes(AutoScalingGroupName=group, ScalingProcesses=["Terminate"])
        cloud.run_until_idle(3600)
        assert sorted(cloud.layout(group).values()) == [1, 2, 2]  # desired is 4
        asg.resume_processes(AutoScalingGroupName=group, ScalingProcesses=["Terminate"])
        cloud.run_until_idle(600)
        assert sorted(cloud.layout(group).values()) == [1, 1, 2]


def test_suspended_launch_health_check_and_replace_unhealthy() -> None:
    # Same page: Launch suspended, the group does not scale out; HealthCheck suspended, nothing is marked
    # unhealthy; ReplaceUnhealthy suspended, unhealthy instances are not replaced; each resumes its work.
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        group = stack.worker_group
        asg = cloud.session.client("autoscaling")
        asg.suspend_processes(AutoScalingGroupName=group, ScalingProcesses=["Launch"])
        cloud.set_desired(group, 3)
        cloud.run_until_idle(600)
        assert in_service(cloud, group) == []
        asg.resume_processes(AutoScalingGroupName=group, ScalingProcesses=["Launch"])
        cloud.run_until_idle(60)
        ids = in_service(cloud, group)
        assert len(ids) == 3
        asg.suspend_processes(
            AutoScalingGroupName=group, ScalingProcesses=["HealthCheck", "ReplaceUnhealthy"]
        )
        cloud.crash_instance(ids[0])
        cloud.run_until_idle(600)
        health = {i.instance_id: i.healthy for i in cloud.instances(group)}
        assert health[ids[0]] is True and ids[0] in in_service(cloud, group)
        asg.resume_processes(AutoScalingGroupName=group, ScalingProcesses=["HealthCheck"])
        cloud.run_until_idle(600)
        health = {i.instance_id: i.healthy for i in cloud.instances(group)}
        assert health[ids[0]] is False and ids[0] in in_service(cloud, group)  # marked, not replaced
        asg.resume_processes(AutoScalingGroupName=group, ScalingProcesses=["ReplaceUnhealthy"])
        cloud.run_until_idle(600)
        assert ids[0] not in in_service(cloud, group) and len(in_service(cloud, group)) == 3


def test_a_rebalance_at_max_size_may_exceed_it_by_the_margin() -> None:
    # "Availability Zone rebalancing" note: at or near the maximum, a rebalance may exceed the maximum
    # size by 10 percent or one instance, whichever is greater.
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        group = stack.manager_group
        cloud.register_handler(POLICY, Recorder(first_suggestion))
        _unbalance_by_decrement(cloud, group)  # 0-2-2, desired 4
        cloud.session.client("autoscaling").update_auto_scaling_group(AutoScalingGroupName=group, MaxSize=4)
        peak: list[int] = []
        cloud.subscribe(lambda what, iid: peak.append(len(cloud.engine.capacity_members(group))))
        cloud.run_until_idle(600)
        assert max(peak) == 5  # MaxSize 4 + max(1, 10 %)
        assert sorted(cloud.layout(group).values()) == [1, 1, 2]
