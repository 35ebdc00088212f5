"""The invariant checker and the cluster observation it compares."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from autojoin.localcloud.records import AwsCall, Invocation, LifecycleRecord
from autojoin.scenario.invariants import (
    best_zone_tolerance,
    lifecycle_violations,
    step_violations,
    token_violations,
    unfinished_violations,
)
from autojoin.scenario.observe import ClusterState, MemberView, members_from_snapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ZONES = ("a", "b", "c")
TOKEN = "SWMTKN-1-" + "x" * 50 + "-" + "y" * 25


def _state(
    layout: dict[str, int], *, leader: bool = True, down: int = 0, down_zones: tuple[str, ...] = ()
) -> ClusterState:
    members = []
    n = 0
    for az, count in layout.items():
        for _ in range(count):
            n += 1
            members.append(MemberView(f"i-{n:017d}", "manager", az, True, leader=leader and n == 1))
    for k in range(down):
        members.append(MemberView(f"i-{900 + k:017d}", "manager", "a", False))
    return ClusterState(at=0, zones=ZONES, has_leader=leader, members=tuple(members), down_zones=down_zones)


def _record(
    token: str, by: str = "api", result: str = "CONTINUE", group: str = "demo-worker"
) -> LifecycleRecord:
    return LifecycleRecord(
        "i-1", group, "autojoin-launch", "autoscaling:EC2_INSTANCE_LAUNCHING", result, by, T0, token
    )


def test_layout_and_tolerance_of_healthy_managers() -> None:
    s = _state({"a": 2, "b": 2, "c": 1})
    assert s.layout == {"a": 2, "b": 2, "c": 1}
    assert s.managers == 5 and s.voters == 5
    assert s.tolerance.tolerates_zone_failures == 1
    assert s.zone_failures_now == 1
    assert s.node_failures_now == 2


def test_down_voters_still_count_in_raft() -> None:
    # 3 healthy 1-1-1 but 5 voters: the layout alone would survive an AZ loss; the swarm does not
    s = _state({"a": 1, "b": 1, "c": 1}, down=2)
    assert s.tolerance.tolerates_zone_failures == 1
    assert s.zone_failures_now == 0
    assert s.node_failures_now == 0


def test_no_leader_tolerates_nothing() -> None:
    s = _state({"a": 0, "b": 2, "c": 0}, leader=False, down=3)
    assert s.zone_failures_now == 0 and s.node_failures_now == 0


def test_completed_twice_and_timeouts_are_violations_of_our_groups_only() -> None:
    records = [
        _record("t1"),
        _record("t1"),
        _record("t2"),
        _record("t3", by="heartbeat-timeout", result="ABANDON"),
        _record("t4", by="heartbeat-timeout", result="ABANDON", group="someone-else"),
    ]
    found = lifecycle_violations(records, ["demo-worker", "demo-manager"])
    assert [v.rule for v in found] == ["lifecycle-twice", "lifecycle-timeout"]
    assert "t1 completed 2 times" in found[0].detail


def test_unfinished_actions() -> None:
    s = ClusterState(
        at=0, zones=ZONES, has_leader=True, groups={"demo-worker": {"InService": 3, "Pending:Wait": 2}}
    )
    assert s.pending_actions == 2
    [v] = unfinished_violations(s)
    assert v.rule == "lifecycle-unfinished" and "2 instance(s) of demo-worker" in v.detail


@dataclass
class _Inv:
    function: str
    result: Any = None
    log: list[str] = field(default_factory=list)


def test_token_leaks_in_calls_results_and_logs() -> None:
    calls = [
        # a secret field, redacted by the recorder: the one place a token belongs
        AwsCall("secretsmanager", "PutSecretValue", {"SecretId": "s", "SecretString": "***"}, T0),
        AwsCall("dynamodb", "PutItem", {"Item": {"principal": {"S": "p"}, "token": "***"}}, T0),
        # a token in an SSM command's argv: the recorder's mark in free text
        AwsCall(
            "ssm", "SendCommand", {"Parameters": {"commands": ["docker swarm join --token *** 10.0.0.1"]}}, T0
        ),
    ]
    invocations = [
        Invocation("OnLaunchFunction", "e1", 1, "ok", T0, result={"outcome": "joined"}),
        Invocation("OnLaunchFunction", "e2", 1, "ok", T0, result={"debug": TOKEN}),
    ]
    logs = ["joined i-1", f"token was {TOKEN}", "join with [REDACTED-TOKEN]"]
    found = token_violations(calls, invocations, logs, decisions=[{"x": [TOKEN]}])
    details = [v.detail for v in found]
    assert len(found) == 5, details
    assert "ssm.SendCommand Parameters.commands[0]" in details[0]
    assert "return value of OnLaunchFunction" in details[1]
    assert "decision (x[0])" in details[2]
    assert "log line 2" in details[3]
    assert "reached the logger (scrubbed) in log line 3" in details[4]
    assert all(TOKEN not in d for d in details)


def test_quorum_lost_by_autojoin_is_a_violation_but_not_by_the_world() -> None:
    before = _state({"a": 2, "b": 2, "c": 1})
    after = _state({"a": 0, "b": 2, "c": 0}, leader=False, down=3)
    assert step_violations(before, after, 3, disruptive=True, autojoin_acted=True) == []
    assert step_violations(before, after, 3, disruptive=False, autojoin_acted=False) == []
    [v] = step_violations(before, after, 3, disruptive=False, autojoin_acted=True)
    assert v.rule == "quorum-lost" and v.step == 3


def test_lowering_az_tolerance_more_than_needed() -> None:
    before = _state({"a": 1, "b": 1, "c": 1})
    worse = _state({"a": 2, "b": 1, "c": 0})  # 3 managers that could be 1-1-1
    [v] = step_violations(before, worse, 2, disruptive=False, autojoin_acted=True)
    assert v.rule == "az-tolerance"
    better = _state({"a": 2, "b": 2, "c": 1})
    assert step_violations(before, better, 2, disruptive=False, autojoin_acted=True) == []
    # scaling 3 -> 2 loses the AZ tolerance whatever the order: not a violation
    two = _state({"a": 1, "b": 1, "c": 0})
    assert best_zone_tolerance(2, ZONES) == 0
    assert step_violations(before, two, 2, disruptive=False, autojoin_acted=True) == []


def test_members_from_snapshot_use_ground_truth() -> None:
    snapshot: list[dict[str, Any]] = [
        {
            "instance_id": "i-1",
            "role": "manager",
            "status": "ready",
            "manager_status": "leader",
            "voter": True,
            "machine_up": True,
            "in_swarm": True,
            "segment": 0,
            "labels": {},
        },
        {
            "instance_id": "i-2",
            "role": "manager",
            "status": "ready",
            "manager_status": "reachable",
            "voter": True,
            "machine_up": False,
            "in_swarm": True,
            "segment": 0,
            "labels": {},
        },
        {
            "instance_id": "i-3",
            "role": "worker",
            "status": "ready",
            "manager_status": None,
            "voter": False,
            "machine_up": True,
            "in_swarm": True,
            "segment": 0,
            "labels": {"az": "c"},
        },
    ]
    members = members_from_snapshot(snapshot, {"i-1": "a", "i-2": "b"}, leader="i-1")
    by_id = {m.instance_id: m for m in members}
    assert by_id["i-1"].healthy and by_id["i-1"].leader
    assert not by_id["i-2"].healthy  # crashed: Swarm still shows it Ready for a while
    assert by_id["i-3"].az == "c" and by_id["i-3"].healthy


def test_an_invocation_that_loses_quorum_is_autojoin_s_unless_the_world_struck_meanwhile() -> None:
    from dataclasses import replace

    from autojoin.scenario.invariants import invocation_violations

    before = _state({"a": 1, "b": 1, "c": 1})
    # autojoin demoted two managers: they are no longer healthy voters, their machines still run
    demoted = tuple(
        replace(m, healthy=False) if m.instance_id != "i-00000000000000001" else m for m in before.members
    )
    after = replace(before, has_leader=False, members=demoted)
    [v] = invocation_violations("OnTerminateFunction", before, after, 4)
    assert v.rule == "quorum-lost" and v.step == 4 and v.detail.startswith("OnTerminateFunction: ")
    # the same loss while two machines crashed during the (waiting) invocation: the world's doing
    crashed = tuple(
        replace(m, healthy=False, up=False) if m.instance_id != "i-00000000000000001" else m
        for m in before.members
    )
    assert invocation_violations("OnLaunchFunction", before, replace(after, members=crashed), 4) == []
