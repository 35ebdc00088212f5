"""The termination policy: one snapshot read, managers by the guard, workers by AZ capacity, stale = safe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.fakes import FakeState

from autojoin.domain.model import ClusterView, Node, Role
from autojoin.errors import BadInput
from autojoin.services.termination_policy import (
    PolicyConfig,
    PolicyDecision,
    TerminationPolicyService,
    parse_policy_input,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class CountingState(FakeState):
    reads: int = 0

    def snapshot(self, cluster: str) -> ClusterView | None:
        self.reads += 1
        return super().snapshot(cluster)


def cluster(taken_at: datetime | None = NOW) -> ClusterView:
    nodes = [
        Node(instance_id=f"i-m{az}{k}", role=Role.MANAGER, az=az)
        for az, n in (("a", 2), ("b", 2), ("c", 1))
        for k in range(1, n + 1)
    ]
    nodes += [Node(instance_id="i-w1", role=Role.WORKER, az="a", available=False)]
    return ClusterView(cluster="demo", nodes=tuple(nodes), zones=("a", "b", "c"), taken_at=taken_at)


def event(
    group: str, offered: list[tuple[str, str]], capacity: dict[str, int], cause: str = "SCALE_IN"
) -> Any:
    return {
        "AutoScalingGroupARN": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x",
        "AutoScalingGroupName": group,
        "CapacityToTerminate": [
            {"AvailabilityZone": z, "Capacity": n, "InstanceMarketOption": "on-demand"}
            for z, n in capacity.items()
        ],
        "Instances": [
            {"AvailabilityZone": z, "InstanceId": i, "InstanceType": "t3.small"} for i, z in offered
        ],
        "Cause": cause,
        "HasMoreInstances": False,
    }


def service(view: ClusterView | None) -> tuple[TerminationPolicyService, CountingState]:
    state = CountingState()
    if view is not None:
        state.save_snapshot(view)
    cfg = PolicyConfig(cluster="demo", manager_group="demo-manager", worker_group="demo-worker")
    return TerminationPolicyService(cfg, state=state, now=lambda: NOW + timedelta(seconds=30)), state


@pytest.mark.parametrize("cause", ["SCALE_IN", "INSTANCE_REFRESH", "MAX_INSTANCE_LIFETIME", "REBALANCE"])
def test_managers_go_only_in_the_order_that_keeps_az_tolerance(cause: str) -> None:
    svc, state = service(cluster())
    offered = [("i-mc1", "c"), ("i-ma1", "a"), ("i-mb1", "b")]
    decision = svc.decide(parse_policy_input(event("demo-manager", offered, {"c": 1, "a": 1}, cause)))
    assert sorted(decision.answer()["InstanceIDs"]) == ["i-ma1", "i-mb1"]
    assert "i-mc1" in decision.refused
    assert state.reads == 1


def test_a_stale_or_missing_snapshot_refuses_managers_and_allows_workers() -> None:
    for view in (None, cluster(taken_at=None), cluster(taken_at=NOW - timedelta(hours=1))):
        svc, _ = service(view)
        managers = svc.decide(parse_policy_input(event("demo-manager", [("i-ma1", "a")], {"a": 1})))
        assert managers.instance_ids == [] and managers.stale
        assert "snapshot" in managers.reason
        workers = svc.decide(
            parse_policy_input(event("demo-worker", [("i-w7", "a"), ("i-w8", "b")], {"b": 1}))
        )
        assert workers.instance_ids == ["i-w8"] and workers.stale


def test_workers_drained_first_within_each_zone() -> None:
    svc, _ = service(cluster())
    offered = [("i-w5", "a"), ("i-w1", "a"), ("i-w6", "b")]
    decision = svc.decide(parse_policy_input(event("demo-worker", offered, {"a": 1})))
    assert decision.instance_ids == ["i-w1"]


def test_another_group_is_refused() -> None:
    svc, _ = service(cluster())
    decision = svc.decide(parse_policy_input(event("other-asg", [("i-ma1", "a")], {"a": 1})))
    assert decision.instance_ids == [] and decision.role is None


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"AutoScalingGroupName": "demo-manager", "Cause": "SCALE_IN"},
        {"AutoScalingGroupName": "demo-manager", "Cause": "NOPE", "Instances": []},
        {"AutoScalingGroupName": "demo-manager", "Cause": "SCALE_IN", "Instances": [{"InstanceId": "i-1"}]},
        {
            "AutoScalingGroupName": "demo-manager",
            "Cause": "SCALE_IN",
            "Instances": [],
            "CapacityToTerminate": 3,
        },
    ],
)
def test_bad_input_is_refused_with_a_reason(bad: Any) -> None:
    with pytest.raises(BadInput):
        parse_policy_input(bad)


# --- what each decision says (found by `make mutate FILES=services/termination_policy.py`) ------------


def test_a_manager_decision_says_what_may_go_and_what_it_leaves() -> None:
    svc, _ = service(cluster())
    offered = [("i-mc1", "c"), ("i-ma1", "a"), ("i-mb1", "b")]
    decision = svc.decide(parse_policy_input(event("demo-manager", offered, {"c": 1, "a": 1})))
    assert decision == PolicyDecision(
        ["i-mb1", "i-ma1"],
        Role.MANAGER,
        "managers: 2 of 2 asked may go (leaves 1-1-1, margin 1)",
        cause="SCALE_IN",
        offered=3,
        asked=2,  # the capacity asked for, not the 3 offered
        refused={"i-mc1": "would leave 2 healthy managers, below MinManagers 3"},
        margin_after=1,
    )
    assert decision.to_log() == {
        "role": "manager",
        "cause": "SCALE_IN",
        "offered": 3,
        "asked": 2,
        "allowed": 2,
        "allowed_ids": ["i-mb1", "i-ma1"],
        "refused": {"i-mc1": "would leave 2 healthy managers, below MinManagers 3"},
        "stale_snapshot": False,
        "margin_after": 1,
    }


def test_managers_all_refused_name_the_rules_they_would_break() -> None:
    three = ClusterView(
        cluster="demo",
        nodes=tuple(Node(instance_id=f"i-m{az}", role=Role.MANAGER, az=az) for az in "abc"),
        zones=("a", "b", "c"),
        taken_at=NOW,
    )
    svc, _ = service(three)
    decision = svc.decide(parse_policy_input(event("demo-manager", [("i-ma", "a"), ("i-mb", "b")], {"a": 1})))
    assert (decision.instance_ids, decision.role) == ([], Role.MANAGER)
    assert decision.reason == "managers refused: would leave 2 healthy managers, below MinManagers 3"
    none_offered = svc.decide(parse_policy_input(event("demo-manager", [], {})))
    assert none_offered.reason == "managers refused: none offered"


def test_a_worker_decision_without_capacity_asks_for_every_offered_one() -> None:
    svc, _ = service(cluster())
    raw = event("demo-worker", [("i-w5", "a"), ("i-w1", "a"), ("i-w6", "b")], {})
    del raw["CapacityToTerminate"]
    decision = svc.decide(parse_policy_input(raw))
    assert decision == PolicyDecision(
        ["i-w1", "i-w5", "i-w6"],
        Role.WORKER,
        "workers: 3 of 3 offered (AZ capacity, drained first)",
        cause="SCALE_IN",
        offered=3,
        asked=3,
    )


def test_another_groups_refusal_says_why_and_counts_what_was_offered() -> None:
    svc, _ = service(cluster())
    decision = svc.decide(parse_policy_input(event("other-asg", [("i-ma1", "a")], {"a": 1})))
    assert decision == PolicyDecision(
        [],
        None,
        "group other-asg is not a group of cluster demo: refused",
        cause="SCALE_IN",
        offered=1,
        asked=1,
    )
    assert decision.to_log()["role"] is None


@pytest.mark.parametrize(
    ("view", "why"),
    [
        (None, "no cluster snapshot"),
        (cluster(taken_at=None), "the cluster snapshot has no time"),
        (cluster(taken_at=NOW - timedelta(hours=1)), "the cluster snapshot is 3630s old (limit 300s)"),
    ],
)
def test_a_stale_snapshot_says_why_and_workers_go_in_auto_scalings_order(
    view: ClusterView | None, why: str
) -> None:
    svc, _ = service(view)
    managers = svc.decide(parse_policy_input(event("demo-manager", [("i-ma1", "a")], {"a": 1})))
    assert managers == PolicyDecision(
        [],
        Role.MANAGER,
        f"managers refused: {why}",
        cause="SCALE_IN",
        offered=1,
        asked=1,
        refused={"i-ma1": why},
        stale=True,
    )
    # the stale view's drained i-w1 is not preferred: a stale view is not trusted for node preferences
    workers = svc.decide(parse_policy_input(event("demo-worker", [("i-w5", "a"), ("i-w1", "a")], {"a": 1})))
    assert workers == PolicyDecision(
        ["i-w5"],
        Role.WORKER,
        f"workers: 1 of 2 offered (AZ capacity, drained first); {why}: allowed without node preferences",
        cause="SCALE_IN",
        offered=2,
        asked=1,
        stale=True,
    )


def test_a_snapshot_exactly_as_old_as_the_limit_is_still_fresh() -> None:
    state = CountingState()
    state.save_snapshot(cluster())
    cfg = PolicyConfig(cluster="demo", manager_group="demo-manager", worker_group="demo-worker")
    svc = TerminationPolicyService(cfg, state=state, now=lambda: NOW + timedelta(seconds=300))
    decision = svc.decide(parse_policy_input(event("demo-manager", [("i-mc1", "c")], {"c": 1})))
    assert (decision.stale, decision.instance_ids) == (False, ["i-mc1"])


def test_a_long_refusal_lists_and_logs_only_the_first_20() -> None:
    svc, _ = service(None)
    offered = [(f"i-m{k:02}", "a") for k in range(25)]
    decision = svc.decide(parse_policy_input(event("demo-manager", offered, {"a": 25})))
    assert list(decision.refused) == [iid for iid, _ in offered[:20]]
    logged = decision.to_log()
    assert list(logged["refused"]) == [iid for iid, _ in offered[:20]]  # type: ignore[call-overload]
    workers = svc.decide(parse_policy_input(event("demo-worker", offered, {"a": 25})))
    assert len(workers.instance_ids) == 25
    assert workers.to_log()["allowed_ids"] == [iid for iid, _ in offered[:20]]
    assert workers.to_log()["allowed"] == 25


def _base(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"AutoScalingGroupName": "demo-manager", "Cause": "SCALE_IN", "Instances": []}
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "termination policy input must be a JSON object, got list"),
        (_base(AutoScalingGroupName=None), "termination policy input without AutoScalingGroupName"),
        (_base(AutoScalingGroupName=""), "termination policy input without AutoScalingGroupName"),
        (_base(AutoScalingGroupName=7), "termination policy input without AutoScalingGroupName"),
        (
            _base(Cause="NOPE"),
            "termination policy input with an unknown Cause (expected one of SCALE_IN, INSTANCE_REFRESH, "
            "MAX_INSTANCE_LIFETIME, REBALANCE)",
        ),
        (_base(Instances=None), "termination policy input without an Instances list"),
        (
            _base(Instances=[{"InstanceId": "i-1"}]),
            "an entry of Instances lacks InstanceId or AvailabilityZone",
        ),
        (
            _base(Instances=[{"InstanceId": 1, "AvailabilityZone": "a"}]),
            "an entry of Instances has a non-string InstanceId or AvailabilityZone",
        ),
        (
            _base(Instances=[{"InstanceId": "i-1", "AvailabilityZone": 1}]),
            "an entry of Instances has a non-string InstanceId or AvailabilityZone",
        ),
        (_base(CapacityToTerminate=3), "CapacityToTerminate must be a list"),
        (
            _base(CapacityToTerminate=[{"Capacity": 1}]),
            "an entry of CapacityToTerminate lacks AvailabilityZone or Capacity",
        ),
        (
            _base(CapacityToTerminate=[{"AvailabilityZone": "a", "Capacity": -1}]),
            "an entry of CapacityToTerminate has a bad AvailabilityZone or Capacity",
        ),
    ],
)
def test_bad_input_is_named_without_echoing_it(bad: Any, message: str) -> None:
    with pytest.raises(BadInput) as err:
        parse_policy_input(bad)
    assert str(err.value) == message


def test_different_refusals_are_each_named_once_in_the_reason() -> None:
    # 3 healthy managers and a dead one; nothing asked for (capacity 0): the dead one is only not needed,
    # a healthy one would break MinManagers
    nodes = (
        *(Node(instance_id=f"i-m{az}", role=Role.MANAGER, az=az) for az in "abc"),
        Node(instance_id="i-mx", role=Role.MANAGER, az="c", healthy=False),
    )
    svc, _ = service(ClusterView(cluster="demo", nodes=nodes, zones=("a", "b", "c"), taken_at=NOW))
    offered = [("i-ma", "a"), ("i-mx", "c")]
    decision = svc.decide(parse_policy_input(event("demo-manager", offered, {"a": 0})))
    assert decision.instance_ids == []
    assert decision.reason == (
        "managers refused: not needed: 0 instance(s) asked for; "
        "would leave 2 healthy managers, below MinManagers 3"
    )


def test_the_log_summary_lists_at_most_20_refusals() -> None:
    refused = {f"i-m{k:02}": "why" for k in range(25)}
    decision = PolicyDecision([], Role.MANAGER, "managers refused: why", refused=refused)
    assert list(decision.to_log()["refused"]) == list(refused)[:20]  # type: ignore[call-overload]


def test_capacity_per_az_is_summed_and_more_instances_are_noted() -> None:
    raw = _base(
        CapacityToTerminate=[
            {"AvailabilityZone": "a", "Capacity": 1},
            {"AvailabilityZone": "a", "Capacity": 2},
            {"AvailabilityZone": "b", "Capacity": 0},  # 0 is a valid capacity: nothing from b
        ],
        HasMoreInstances=True,
    )
    given = parse_policy_input(raw)
    assert given.capacity == {"a": 3, "b": 0}
    assert given.has_more is True
    assert parse_policy_input(_base()).has_more is False
    assert parse_policy_input(_base()).capacity is None


def test_a_capacity_entry_with_a_non_string_zone_is_refused() -> None:
    with pytest.raises(BadInput) as err:
        parse_policy_input(_base(CapacityToTerminate=[{"AvailabilityZone": 1, "Capacity": 1}]))
    assert str(err.value) == "an entry of CapacityToTerminate has a bad AvailabilityZone or Capacity"
