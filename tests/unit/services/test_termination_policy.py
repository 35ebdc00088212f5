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
