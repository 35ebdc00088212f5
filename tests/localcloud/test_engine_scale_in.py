"""Scale-in, the custom termination policy (input shape, every Cause, refusal and retry, the 2 s budget),
instance refresh, maximum instance lifetime and AZ rebalancing."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.localcloud.fixtures.engine_kit import (
    Recorder,
    engine_cloud,
    first_suggestion,
    in_service,
    states,
    wire_lifecycle,
)

POLICY = "TerminationPolicyFunction"


def _managers(cloud: Any, stack: Any, count: int) -> list[str]:
    wire_lifecycle(cloud)
    cloud.set_desired(stack.manager_group, count)
    cloud.run_until_idle(60)
    ids = in_service(cloud, stack.manager_group)
    assert len(ids) == count
    return ids


def _az(cloud: Any, group: str) -> dict[str, str]:
    return {i.instance_id: i.az for i in cloud.instances(group)}


def test_scale_in_calls_the_policy_with_the_real_input_shape() -> None:
    with engine_cloud() as (cloud, stack):
        ids = _managers(cloud, stack, 3)
        policy = Recorder(first_suggestion)
        cloud.register_handler(POLICY, policy)
        asg = cloud.session.client("autoscaling")
        asg.set_desired_capacity(AutoScalingGroupName=stack.manager_group, DesiredCapacity=2)  # the API path
        cloud.run_until_idle(600)
        assert len(policy.events) == 1
        event = policy.events[0]
        group = cloud.engine.group(stack.manager_group)
        assert set(event) == {
            "AutoScalingGroupARN",
            "AutoScalingGroupName",
            "CapacityToTerminate",
            "Instances",
            "Cause",
            "HasMoreInstances",
        }
        assert event["AutoScalingGroupARN"] == group.arn
        assert ":autoScalingGroupName/" + stack.manager_group in event["AutoScalingGroupARN"]
        assert event["AutoScalingGroupName"] == stack.manager_group
        assert event["Cause"] == "SCALE_IN"
        assert event["HasMoreInstances"] is False
        (capacity,) = event["CapacityToTerminate"]
        assert set(capacity) == {"AvailabilityZone", "Capacity", "InstanceMarketOption"}
        assert capacity["Capacity"] == 1 and capacity["InstanceMarketOption"] == "on-demand"
        for inst in event["Instances"]:
            assert set(inst) == {"AvailabilityZone", "InstanceId", "InstanceType", "InstanceMarketOption"}
            assert inst["InstanceType"] == "t3.small"
        # 1-1-1 is balanced: the input lists the eligible instances of every AZ, not only the one in
        # CapacityToTerminate ("Create a custom termination policy with Lambda", Input data)
        assert sorted(i["InstanceId"] for i in event["Instances"]) == sorted(ids)
        assert len({i["AvailabilityZone"] for i in event["Instances"]}) == 3
        victim = event["Instances"][0]["InstanceId"]
        assert victim in ids
        assert victim not in in_service(cloud, stack.manager_group)
        assert len(in_service(cloud, stack.manager_group)) == 2
        call = cloud.policy_calls[-1]
        assert (call.cause, call.answer, call.accepted, call.over_budget) == (
            "SCALE_IN",
            [victim],
            [victim],
            False,
        )
        (inv,) = [i for i in cloud.invocations if i.function == POLICY]
        assert inv.kind == "termination-policy" and inv.outcome == "ok"


def test_scale_in_takes_from_the_largest_zone_first() -> None:
    with engine_cloud() as (cloud, stack):
        _managers(cloud, stack, 5)  # 2-2-1
        per_zone = Counter(_az(cloud, stack.manager_group).values())
        small = min(per_zone, key=lambda z: per_zone[z])
        policy = Recorder(first_suggestion)
        cloud.register_handler(POLICY, policy)
        cloud.set_desired(stack.manager_group, 4)
        cloud.run_until_idle(600)
        zone = policy.events[0]["CapacityToTerminate"][0]["AvailabilityZone"]
        assert zone != small and per_zone[zone] == 2
        assert sorted(cloud.layout(stack.manager_group).values()) == [1, 1, 2]


def test_scale_in_protection_is_honoured() -> None:
    with engine_cloud() as (cloud, stack):
        _managers(cloud, stack, 5)
        zones = _az(cloud, stack.manager_group)
        per_zone = Counter(zones.values())
        big = sorted(z for z, n in per_zone.items() if n == 2)
        protected = [i for i, z in zones.items() if z == big[0]]
        cloud.session.client("autoscaling").set_instance_protection(
            AutoScalingGroupName=stack.manager_group, InstanceIds=protected, ProtectedFromScaleIn=True
        )
        # the policy tries to remove a protected instance: Auto Scaling will not
        policy = Recorder(lambda e: {"InstanceIDs": [protected[0]]})
        cloud.register_handler(POLICY, policy)
        cloud.set_desired(stack.manager_group, 4)
        cloud.run_until_idle(0)
        event = policy.events[0]
        assert event["CapacityToTerminate"][0]["AvailabilityZone"] == big[1]  # the other 2-zone
        assert not set(protected) & {i["InstanceId"] for i in event["Instances"]}
        assert set(protected) <= set(in_service(cloud, stack.manager_group))
        assert cloud.policy_calls[-1].accepted == []
        # everything protected: nothing is suggested and nothing is asked
        cloud.set_protection(stack.manager_group, list(zones), True)
        cloud.run_until_idle(600)
        asked = len(policy.events)
        cloud.advance(3600)
        assert len(policy.events) == asked
        assert len(in_service(cloud, stack.manager_group)) == 5


def test_an_empty_answer_refuses_and_is_asked_again_while_desired_is_below_current() -> None:
    with engine_cloud() as (cloud, stack):
        _managers(cloud, stack, 3)
        answers: list[list[str]] = [[], [], []]

        def decide(event: dict[str, Any]) -> dict[str, list[str]]:
            return {"InstanceIDs": answers.pop(0) if answers else [event["Instances"][0]["InstanceId"]]}

        policy = Recorder(decide)
        cloud.register_handler(POLICY, policy)
        cloud.set_desired(stack.manager_group, 2)
        cloud.run_until_idle(0)
        assert len(policy.events) == 1
        assert len(in_service(cloud, stack.manager_group)) == 3  # refused: nothing happens now
        cloud.advance(60)
        assert len(policy.events) == 2  # asked again
        cloud.advance(60)
        assert len(policy.events) == 3
        cloud.advance(60)
        assert len(policy.events) == 4  # the fourth answer names an instance
        cloud.run_until_idle(600)
        assert len(in_service(cloud, stack.manager_group)) == 2
        assert [c.accepted != [] for c in cloud.policy_calls] == [False, False, False, True]
        times = [c.at for c in cloud.policy_calls]
        assert [(b - a).total_seconds() for a, b in itertools.pairwise(times)] == [60, 60, 60]


def test_refusal_stops_being_asked_once_desired_is_back() -> None:
    with engine_cloud() as (cloud, stack):
        _managers(cloud, stack, 3)
        policy = Recorder(lambda e: {"InstanceIDs": []})
        cloud.register_handler(POLICY, policy)
        cloud.set_desired(stack.manager_group, 2)
        cloud.advance(150)
        asked = len(policy.events)
        assert asked == 3
        cloud.session.client("autoscaling").update_auto_scaling_group(
            AutoScalingGroupName=stack.manager_group, MinSize=3, DesiredCapacity=3
        )
        cloud.run_until_idle(3600)
        assert len(policy.events) == asked
        assert len(in_service(cloud, stack.manager_group)) == 3


def test_an_answer_over_the_two_second_budget_is_ignored() -> None:
    with engine_cloud() as (cloud, stack):
        _managers(cloud, stack, 3)
        slow = {"yes": True}

        def decide(event: dict[str, Any]) -> dict[str, list[str]]:
            if slow["yes"]:
                cloud.clock.sleep(2.5)  # the handler takes 2.5 s (simulated)
            return first_suggestion(event)

        policy = Recorder(decide)
        cloud.register_handler(POLICY, policy)
        cloud.set_desired(stack.manager_group, 2)
        cloud.run_until_idle(0)
        call = cloud.policy_calls[-1]
        assert call.over_budget and call.answer is None and call.accepted == []
        assert call.elapsed_seconds >= 2.5
        assert len(in_service(cloud, stack.manager_group)) == 3
        assert [i.outcome for i in cloud.invocations if i.function == POLICY] == ["over-budget"]
        slow["yes"] = False
        cloud.run_until_idle(600)
        assert len(in_service(cloud, stack.manager_group)) == 2
        assert not cloud.policy_calls[-1].over_budget


def test_errors_malformed_answers_and_unknown_ids_are_no_answer() -> None:
    with engine_cloud() as (cloud, stack):
        _managers(cloud, stack, 3)
        answers: list[Any] = [
            RuntimeError("boom"),
            "nonsense",
            {"InstanceIDs": "i-1"},
            {"InstanceIDs": ["i-nope"]},
        ]

        def decide(event: dict[str, Any]) -> Any:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        cloud.register_handler(POLICY, Recorder(decide))
        cloud.set_desired(stack.manager_group, 2)
        cloud.advance(200)
        assert [c.answer for c in cloud.policy_calls] == [None, None, None, ["i-nope"]]
        assert all(c.accepted == [] for c in cloud.policy_calls)
        assert len(in_service(cloud, stack.manager_group)) == 3
        assert next(i.error_type for i in cloud.invocations if i.function == POLICY) == "RuntimeError"


def test_a_policy_without_the_service_linked_role_permission_is_never_invoked() -> None:
    with engine_cloud() as (cloud, stack):
        _managers(cloud, stack, 3)
        unwired = Recorder(first_suggestion)
        cloud.register_handler("UnwiredFunction", unwired)
        cloud.set_termination_policy(stack.manager_group, "UnwiredFunction")
        cloud.set_desired(stack.manager_group, 2)
        cloud.advance(120)
        assert unwired.events == []
        assert {i.outcome for i in cloud.invocations if i.function == "UnwiredFunction"} == {"denied"}
        assert len(in_service(cloud, stack.manager_group)) == 3
        cloud.set_termination_policy(stack.manager_group, None)  # back to the default policy
        cloud.run_until_idle(600)
        assert len(in_service(cloud, stack.manager_group)) == 2


def test_default_policy_without_a_function_balances_zones_and_takes_the_oldest() -> None:
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        cloud.set_desired(stack.worker_group, 3)
        cloud.run_until_idle(60)
        cloud.advance(3600)
        cloud.set_desired(stack.worker_group, 6)
        cloud.run_until_idle(60)
        first = set(in_service(cloud, stack.worker_group))
        cloud.set_desired(stack.worker_group, 4)
        cloud.run_until_idle(600)
        left = set(in_service(cloud, stack.worker_group))
        assert len(left) == 4
        assert sorted(cloud.layout(stack.worker_group).values()) == [1, 1, 2]
        launched = {i: cloud.engine.tracked[i].launched_at for i in first}
        gone = first - left
        assert all(launched[g] == cloud.start for g in gone)  # the oldest went


def _auto(cloud: Any) -> Recorder:
    policy = Recorder(first_suggestion)
    cloud.register_handler(POLICY, policy)
    return policy


def test_instance_refresh_replaces_every_instance_through_the_policy() -> None:
    with engine_cloud() as (cloud, stack):
        old = set(_managers(cloud, stack, 3))
        policy = _auto(cloud)
        cloud.start_instance_refresh(stack.manager_group)
        assert cloud.refresh_status(stack.manager_group) == "InProgress"
        cloud.run_until_idle(7200)
        new = set(in_service(cloud, stack.manager_group))
        assert len(new) == 3 and not new & old
        assert [e["Cause"] for e in policy.events] == ["INSTANCE_REFRESH"] * 3
        assert all(sum(c["Capacity"] for c in e["CapacityToTerminate"]) == 1 for e in policy.events)
        assert cloud.refresh_status(stack.manager_group) == "Successful"
        assert sorted(cloud.layout(stack.manager_group).values()) == [1, 1, 1]


def test_instance_refresh_launch_before_terminate_never_drops_below_desired() -> None:
    with engine_cloud() as (cloud, stack):
        old = set(_managers(cloud, stack, 3))
        _auto(cloud)
        counts: list[int] = []
        cloud.subscribe(lambda what, iid: counts.append(len(in_service(cloud, stack.manager_group))))
        cloud.start_instance_refresh(stack.manager_group, launch_before_terminate=True)
        cloud.run_until_idle(7200)
        assert not set(in_service(cloud, stack.manager_group)) & old
        assert min(counts) >= 3 - 1  # a terminating instance leaves InService only after its partner came
        assert max(counts) == 4


def test_instance_refresh_fails_after_an_hour_of_refusals() -> None:
    with engine_cloud() as (cloud, stack):
        old = set(_managers(cloud, stack, 3))
        policy = Recorder(lambda e: {"InstanceIDs": []})
        cloud.register_handler(POLICY, policy)
        cloud.start_instance_refresh(stack.manager_group)
        cloud.run_until_idle(3 * 3600)
        assert cloud.refresh_status(stack.manager_group) == "Failed"
        assert set(in_service(cloud, stack.manager_group)) == old
        assert {e["Cause"] for e in policy.events} == {"INSTANCE_REFRESH"}
        assert cloud.policy_calls[-1].at - cloud.policy_calls[0].at == timedelta(hours=1)


def test_max_instance_lifetime_replaces_expired_instances() -> None:
    with engine_cloud() as (cloud, stack):
        cloud.set_max_instance_lifetime(stack.manager_group, 86400)
        old = set(_managers(cloud, stack, 3))
        policy = _auto(cloud)
        cloud.clock.advance_to(cloud.start + timedelta(seconds=86399))  # launched at start
        assert policy.events == []
        cloud.run_until_idle(86400)
        assert {e["Cause"] for e in policy.events} == {"MAX_INSTANCE_LIFETIME"}
        assert not set(in_service(cloud, stack.manager_group)) & old


def test_rebalance_launches_first_then_asks_with_cause_rebalance() -> None:
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        # build an imbalance: 3 instances all in one zone (the group's zones narrowed, then widened)
        group = cloud.engine.group(stack.manager_group)
        zones = list(group.availability_zones)
        group.availability_zones = zones[:1]
        cloud.set_desired(stack.manager_group, 3)
        cloud.run_until_idle(60)
        group.availability_zones = zones
        assert cloud.layout(stack.manager_group)[zones[0]] == 3
        policy = _auto(cloud)
        order: list[tuple[str, str]] = []
        cloud.subscribe(lambda what, iid: order.append((what, iid)))
        cloud.rebalance(stack.manager_group)
        cloud.run_until_idle(7200)
        assert sorted(cloud.layout(stack.manager_group).values()) == [1, 1, 1]
        # "Create a custom termination policy with Lambda" (Considerations): each round asks with Cause
        # REBALANCE whether an instance is ready, launches, then a scale-in takes the surplus
        assert [e["Cause"] for e in policy.events] == ["REBALANCE", "SCALE_IN"] * 2
        assert all(e["CapacityToTerminate"][0]["AvailabilityZone"] == zones[0] for e in policy.events)
        assert order[0][0] == "launched"  # launch before terminate
        whats = [w for w, _ in order]
        assert whats.index("launched") < whats.index("terminated")
        assert len(states(cloud, stack.manager_group)) == 3


def test_instance_refresh_through_the_auto_scaling_api() -> None:
    with engine_cloud() as (cloud, stack):
        old = set(_managers(cloud, stack, 3))
        _auto(cloud)
        asg = cloud.session.client("autoscaling")
        assert (
            asg.describe_instance_refreshes(AutoScalingGroupName=stack.manager_group)["InstanceRefreshes"]
            == []
        )
        rid = asg.start_instance_refresh(
            AutoScalingGroupName=stack.manager_group, Preferences={"MaxHealthyPercentage": 110}
        )["InstanceRefreshId"]
        with pytest.raises(ClientError) as err:
            asg.start_instance_refresh(AutoScalingGroupName=stack.manager_group)
        assert err.value.response["Error"]["Code"] == "InstanceRefreshInProgress"
        (running,) = asg.describe_instance_refreshes(AutoScalingGroupName=stack.manager_group)[
            "InstanceRefreshes"
        ]
        assert (running["InstanceRefreshId"], running["Status"], running["InstancesToUpdate"]) == (
            rid,
            "InProgress",
            3,
        )
        assert running["Preferences"]["MaxHealthyPercentage"] == 110
        cloud.run_until_idle(7200)
        (done,) = asg.describe_instance_refreshes(
            AutoScalingGroupName=stack.manager_group, InstanceRefreshIds=[rid]
        )["InstanceRefreshes"]
        assert (done["Status"], done["PercentageComplete"], done["InstancesToUpdate"]) == (
            "Successful",
            100,
            0,
        )
        assert done["EndTime"] >= done["StartTime"]
        assert not set(in_service(cloud, stack.manager_group)) & old
        with pytest.raises(ClientError) as err:
            asg.cancel_instance_refresh(AutoScalingGroupName=stack.manager_group)
        assert err.value.response["Error"]["Code"] == "ActiveInstanceRefreshNotFound"
        with pytest.raises(ClientError, match="not found"):
            asg.start_instance_refresh(AutoScalingGroupName="nope")


def test_a_cancelled_refresh_stops_replacing() -> None:
    with engine_cloud() as (cloud, stack):
        old = set(_managers(cloud, stack, 3))
        cloud.register_handler(POLICY, Recorder(lambda e: {"InstanceIDs": []}))
        asg = cloud.session.client("autoscaling")
        rid = cloud.start_instance_refresh(stack.manager_group, launch_before_terminate=True)
        cloud.run_until_idle(120)
        assert len(in_service(cloud, stack.manager_group)) == 4  # the extra one, launched first
        assert (
            asg.cancel_instance_refresh(AutoScalingGroupName=stack.manager_group)["InstanceRefreshId"] == rid
        )
        assert cloud.refresh_status(stack.manager_group) == "Cancelled"
        cloud.register_handler(POLICY, Recorder(first_suggestion))
        cloud.run_until_idle(3600)
        current = set(in_service(cloud, stack.manager_group))
        assert len(current) == 3 and len(current & old) == 2  # the surge instance went by scale-in
