"""Whole results of ReconcileService runs: the report, the decision log it keeps, and every call it made
on the fakes (group, protection, lease, pending list, labels), for each path of one run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from tests.unit.services.reconcile_world import A, B, C, World, make_world

from autojoin.domain.model import InstanceInfo, LifecycleAction, LifecycleKind, LifecycleResult, Role
from autojoin.domain.rebalance import Decision, ReconcileRecord, StepKind
from autojoin.errors import TransientAwsError
from autojoin.ports import CompletionOutcome, Member
from autojoin.services.reconcile import ReconcileReport
from autojoin.services.removal import DeadNode


def whole(report: ReconcileReport, **fields: Any) -> dict[str, Any]:
    """The report dict a run should give: a healthy 5-manager cluster's numbers unless told otherwise; the
    step's own text (rebalance's business, tested there) is taken from the report's step."""
    out: dict[str, Any] = {
        "cluster": "demo",
        "dry_run": False,
        "has_leader": True,
        "voters": 5,
        "healthy_managers": 5,
        "quorum_margin": 2,
        "zone_failures_tolerated": 1,
        "best_zone_failures": 1,
        "leader_az": A,
        "pending_joins": 0,
        "target": 5,
        "layout": {A: 2, B: 2, C: 1},
        "impaired": [],
        "retained": [],
        "step": report.step.describe() if report.step else None,
        "plan": list(report.step.plan) if report.step else [],
        "actions": [],
        "joined": [],
        "error": None,
    }
    out.update(fields)
    return out


def log(w: World) -> list[Decision]:
    return list(w.state.records["demo"].decisions)


def said(w: World, kind: str, detail: str, dry_run: bool = False) -> Decision:
    return Decision(at=w.clock.now(), kind=kind, detail=detail, dry_run=dry_run)


@pytest.fixture
def balanced() -> World:
    return make_world((A, B, C), {A: 2, B: 2, C: 1}, workers=2)


# --- nothing to do ------------------------------------------------------------------------------------


def _recorded_worker_launch(iid: str) -> tuple[LifecycleAction, Role]:
    """The pending record the reconciler writes for a worker launch it found in Pending:Wait."""
    action = LifecycleAction(
        kind=LifecycleKind.LAUNCHING,
        group="wrk",
        instance_id=iid,
        hook="autojoin-launch",
        event_id=f"reconcile:{iid}",
    )
    return action, Role.WORKER


def test_a_balanced_cluster_reports_its_numbers_and_logs_nothing(balanced: World) -> None:
    report = balanced.service().run()
    assert report.step is not None and report.step.kind is StepKind.NONE
    assert report.to_dict() == whole(report)
    assert balanced.state.records["demo"] == ReconcileRecord(zones=balanced.state.records["demo"].zones)
    assert {z: w.impaired for z, w in balanced.state.records["demo"].zones.items()} == {
        A: False,
        B: False,
        C: False,
    }
    assert balanced.state.lease_asks == [] and balanced.fleet.desired_calls == []


def test_a_cluster_without_a_manager_group_takes_no_step() -> None:
    w = make_world((A, B, C), {A: 2, B: 2, C: 1})
    del w.fleet.groups["mgr"]
    report = w.service().run()
    assert report.step is None
    assert report.to_dict() == whole(report, best_zone_failures=0, target=0, layout={A: 2, B: 2, C: 1})


def test_the_manager_group_is_named_in_what_a_step_waits_for() -> None:
    w = make_world((A, B, C), {A: 2, B: 2})
    report = w.service().run()
    assert report.step is not None
    assert report.step.reason == f"the plan adds in {A} or {B} but mgr would launch into {C}"


def test_the_best_tolerance_is_that_of_the_target_not_of_the_managers_joined_so_far() -> None:
    w = make_world((A, B, C), {A: 1})
    w.fleet.groups["mgr"] = w.fleet.groups["mgr"].model_copy(update={"desired": 3})
    report = w.service().run()
    assert report.step is not None and report.step.kind is StepKind.WAIT
    assert report.to_dict() == whole(
        report,
        voters=1,
        healthy_managers=1,
        quorum_margin=0,
        zone_failures_tolerated=0,
        best_zone_failures=1,  # 1-1-1: three managers survive one AZ loss; the one manager survives none
        target=3,
        layout={A: 1, B: 0, C: 0},
    )


def test_the_min_managers_floor_holds_the_target() -> None:
    """A group asked for fewer managers than MinManagers: the target stays at the floor."""
    w = make_world((A, B, C), {A: 1, B: 1, C: 1})
    w.fleet.groups["mgr"] = w.fleet.groups["mgr"].model_copy(update={"desired": 1})
    report = w.service(min_managers=3).run()
    assert report.step is not None and report.step.target == 3
    assert report.to_dict() == whole(
        report, voters=3, healthy_managers=3, quorum_margin=1, target=3, layout={A: 1, B: 1, C: 1}
    )
    assert w.service().run().target == 1, "the default floor is one manager"


def test_a_surge_left_behind_by_someone_else_is_forgotten(balanced: World) -> None:
    """surge_from is only ours while the group's desired is one above it."""
    balanced.state.records["demo"] = ReconcileRecord(surge_from=7)
    report = balanced.service().run()
    assert report.target == 5
    assert balanced.state.records["demo"].surge_from is None


def test_the_leader_az_is_none_while_no_manager_shows_as_leader(balanced: World) -> None:
    real = balanced.swarm.members
    balanced.swarm.members = lambda: [replace(m, leader=False) for m in real()]  # type: ignore[method-assign]
    report = balanced.service().run()
    assert report.to_dict() == whole(report, leader_az=None)


def test_retained_instances_are_listed_sorted_even_without_a_leader(balanced: World) -> None:
    for iid, group in (("i-rb", "wrk"), ("i-ra", "mgr")):
        balanced.fleet.launch(iid, group, A, "10.0.9.9")
        balanced.fleet.by_id[iid] = balanced.fleet.by_id[iid].model_copy(
            update={"lifecycle_state": "Terminating:Retained"}
        )
    balanced.fleet.launch("i-none", "wrk", B, "10.0.9.8")
    balanced.fleet.by_id["i-none"] = balanced.fleet.by_id["i-none"].model_copy(
        update={"lifecycle_state": None}
    )
    report = balanced.service().run()
    assert report.to_dict() == whole(report, retained=["i-ra", "i-rb"])
    for m in list(balanced.fleet.by_id.values())[:3]:
        balanced.swarm.crash(m.instance_id)
    balanced.clock.advance(120)
    assert balanced.service().run().retained == ("i-ra", "i-rb")


# --- no leader ----------------------------------------------------------------------------------------


def test_without_a_leader_the_last_snapshot_gives_the_voters_and_nothing_changes() -> None:
    w = make_world((A, B, C), {A: 2, B: 1})
    w.state.leases["demo"] = "someone"  # no step in the first run
    w.service().run()
    before = w.state.views["demo"]
    lost = w.start(Role.WORKER, C)
    w.state.add_pending("demo", w.action(lost), Role.WORKER)
    for m in list(w.fleet.by_id.values())[:2]:
        w.swarm.crash(m.instance_id)
    w.clock.advance(120)
    report = w.service(dry_run=True).run()
    line = "no leader (NoLeader): observed only, nothing changed"
    assert report.to_dict() == whole(
        report,
        dry_run=True,
        has_leader=False,
        voters=3,
        healthy_managers=0,
        quorum_margin=-1,
        zone_failures_tolerated=0,
        best_zone_failures=0,
        leader_az=None,
        pending_joins=1,
        target=0,
        layout={},
        actions=[line],
        error="NoLeader",
    )
    assert log(w)[-1] == said(w, "no-leader", line, dry_run=True)
    assert w.state.views["demo"] is before, "the old snapshot stays: its age tells the guard it is stale"


def test_without_a_leader_and_without_a_snapshot_nothing_is_known() -> None:
    w = make_world((A, B, C), {A: 2, B: 1})
    del w.state.views["demo"]  # the launches saved one
    for m in list(w.fleet.by_id.values())[:2]:
        w.swarm.crash(m.instance_id)
    w.clock.advance(120)
    report = w.service().run()
    line = "no leader (NoLeader): observed only, nothing changed"
    assert (report.voters, report.quorum_margin, report.actions) == (0, 0, (line,))
    assert log(w) == [said(w, "no-leader", line)]
    assert "demo" not in w.state.views


# --- zone health --------------------------------------------------------------------------------------


def test_zone_changes_and_waits_are_logged_once_each() -> None:
    w = make_world((A, B, C), {A: 3, B: 2, C: 0})
    for m in w.fleet.by_id.values():
        if m.az == B:
            w.swarm.crash(m.instance_id)
    w.clock.advance(120)
    t1 = w.clock.now()
    report = w.service().run()
    assert report.to_dict() == whole(
        report,
        healthy_managers=3,
        quorum_margin=0,
        zone_failures_tolerated=0,
        best_zone_failures=0,  # B impaired: the best 5 over A and C survives no AZ loss
        layout={A: 3, B: 0, C: 0},
        impaired=[B],
    )
    impaired = [said(w, "zone", f"{B} impaired"), said(w, "wait", f"{B} is impaired")]
    assert log(w) == impaired
    w.clock.advance(60)
    w.service().run()
    assert log(w) == impaired, "the same wait is not logged again"
    for m in w.fleet.by_id.values():
        if m.az == B:
            w.swarm.restart(m.instance_id)
    w.clock.advance(60)
    w.service().run()
    recovering = said(w, "wait", f"{B} is impaired (recovering)")
    assert log(w) == [*impaired, recovering]
    w.clock.advance(60)
    w.service().run()
    assert log(w) == [*impaired, recovering], "the last wait again: not logged"
    w.clock.advance(900)
    report = w.service().run()
    assert report.impaired == ()
    trusted = [
        said(w, "zone", f"{B} trusted again"),
        said(w, "wait", f"{B} recovered 0s ago (settling for 900s)"),
    ]
    assert log(w) == [*impaired, recovering, *trusted]
    assert [d.at for d in impaired] == [t1, t1]


def test_a_dry_run_logs_its_wait_as_dry_and_zone_changes_as_observations() -> None:
    w = make_world((A, B, C), {A: 3, B: 2, C: 0})
    for m in w.fleet.by_id.values():
        if m.az == B:
            w.swarm.crash(m.instance_id)
    w.clock.advance(120)
    w.service(dry_run=True).run()
    assert log(w) == [said(w, "zone", f"{B} impaired"), said(w, "wait", f"{B} is impaired", dry_run=True)]


# --- pending joins and lost launch events -------------------------------------------------------------


def test_lost_launches_are_recorded_then_a_dry_run_names_them_then_a_run_joins_them() -> None:
    w = make_world((A, B, C), {A: 2, B: 2, C: 1}, workers=1)
    first, second = w.start(Role.WORKER, A), w.start(Role.WORKER, B)
    report = w.service().run()
    recorded = [f"record {iid} (worker, no join under way) as pending" for iid in (first, second)]
    assert report.to_dict() == whole(report, pending_joins=2, actions=recorded)
    assert w.state.waiting["demo"] == {iid: _recorded_worker_launch(iid) for iid in (first, second)}
    assert log(w) == [said(w, "lost-launch", line) for line in recorded]

    dry = w.service(dry_run=True).run()
    finish = f"would finish 2 pending join(s): {first}, {second}"
    assert dry.to_dict() == whole(dry, dry_run=True, pending_joins=2, actions=[finish])
    assert log(w)[-1] == said(w, "join", finish, dry_run=True)
    assert w.swarm.node_id_of(first) is None and w.swarm.node_id_of(second) is None

    done = w.service().run()
    joined = [f"pending {iid}: joined (joined as worker)" for iid in (first, second)]
    assert [d.instance_id for d in done.joined] == [first, second]
    assert done.to_dict() == whole(done, actions=joined, joined=[d.to_dict() for d in done.joined])
    assert log(w)[-2:] == [said(w, "join", line) for line in joined]


def test_a_lost_manager_launch_is_recorded_with_its_role_and_the_hook_configured(balanced: World) -> None:
    iid = balanced.start(Role.MANAGER, C)
    balanced.fleet.groups["mgr"] = balanced.fleet.groups["mgr"].model_copy(update={"desired": 6})
    report = balanced.service(launch_hook="my-hook").run()
    assert report.actions == (f"record {iid} (manager, no join under way) as pending",)
    (action, role) = balanced.state.waiting["demo"][iid]
    assert (action.hook, action.group, action.event_id, role) == (
        "my-hook",
        "mgr",
        f"reconcile:{iid}",
        Role.MANAGER,
    )


def test_a_dry_run_records_no_lost_launch(balanced: World) -> None:
    iid = balanced.start(Role.WORKER, C)
    report = balanced.service(dry_run=True).run()
    line = f"would record {iid} (worker, no join under way) as pending"
    assert report.to_dict() == whole(report, dry_run=True, actions=[line])
    assert log(balanced) == [said(balanced, "lost-launch", line, dry_run=True)]
    assert balanced.state.pending("demo") == []
    assert balanced.fleet.heartbeats == []  # a dry run keeps no hook alive either


def test_a_recorded_launch_is_kept_alive_and_one_finished_meanwhile_is_not_recorded(balanced: World) -> None:
    alive, finished = balanced.start(Role.WORKER, A), balanced.start(Role.WORKER, B)
    balanced.fleet.open_actions.discard(finished)  # its action ended after the groups were read
    report = balanced.service().run()
    line = f"record {alive} (worker, no join under way) as pending"
    assert report.to_dict() == whole(report, pending_joins=1, actions=[line])
    assert balanced.fleet.heartbeats == [alive, finished]
    assert [a.instance_id for a, _ in balanced.state.pending("demo")] == [alive]
    assert log(balanced) == [said(balanced, "lost-launch", line)]


def test_a_launch_finished_meanwhile_does_not_stop_the_next_one_being_recorded(balanced: World) -> None:
    finished, alive = balanced.start(Role.WORKER, A), balanced.start(Role.WORKER, B)  # finished comes first
    balanced.fleet.open_actions.discard(finished)
    report = balanced.service().run()
    line = f"record {alive} (worker, no join under way) as pending"
    assert report.to_dict() == whole(report, pending_joins=1, actions=[line])
    assert balanced.fleet.heartbeats == [finished, alive]
    assert [a.instance_id for a, _ in balanced.state.pending("demo")] == [alive]


def test_a_throttled_heartbeat_keeps_the_record_and_the_rest_of_the_run_goes_on(
    balanced: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RecordLifecycleActionHeartbeat throttled past the SDK's retries (an error path: hand-written): the
    record stays for the next run, the next lost launch is still recorded, and drift is still set back."""
    throttled, alive = balanced.start(Role.WORKER, A), balanced.start(Role.WORKER, B)
    drifted = next(iid for iid, i in balanced.fleet.by_id.items() if i.group == "mgr")
    balanced.fleet.protection[drifted] = False
    balanced.fleet.by_id[drifted] = balanced.fleet.by_id[drifted].model_copy(
        update={"protected_from_scale_in": False}
    )
    real = balanced.fleet.heartbeat

    def heartbeat(action: LifecycleAction) -> bool:
        if action.instance_id == throttled:
            balanced.fleet.heartbeats.append(throttled)
            raise TransientAwsError("RecordLifecycleActionHeartbeat: Throttling (Rate exceeded)")
        return real(action)

    monkeypatch.setattr(balanced.fleet, "heartbeat", heartbeat)
    report = balanced.service().run()
    refused = (
        f"record {throttled} (worker) as pending; its heartbeat was refused, the next run sends it "
        "(TransientAwsError: RecordLifecycleActionHeartbeat: Throttling (Rate exceeded))"
    )
    recorded = f"record {alive} (worker, no join under way) as pending"
    assert report.error is None
    assert report.actions[:2] == (refused, recorded)
    assert log(balanced)[:2] == [
        said(balanced, "lost-launch", refused),
        said(balanced, "lost-launch", recorded),
    ]
    assert any(drifted in a and "protect" in a for a in report.actions[2:]), report.actions
    assert balanced.fleet.heartbeats == [throttled, alive]
    assert sorted(a.instance_id for a, _ in balanced.state.pending("demo")) == sorted([throttled, alive])
    assert balanced.fleet.protection[drifted] is True


class _Killed(BaseException):
    """The launch function's container died (what the local cloud's fault plan raises)."""


def test_a_launch_whose_handler_died_after_the_join_is_recorded_then_completed(
    balanced: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OnLaunchFunction joined and labelled the node, then died before CompleteLifecycleAction; Lambda's
    # retries found its idempotency record in progress. The node is a member, its action still open.
    iid = balanced.start(Role.WORKER, C)

    def killed(action: LifecycleAction, result: LifecycleResult) -> None:
        raise _Killed

    monkeypatch.setattr(balanced.fleet, "complete", killed)
    with pytest.raises(_Killed):
        balanced.launch.handle(balanced.action(iid))
    monkeypatch.undo()
    assert balanced.swarm.node_id_of(iid) is not None
    assert balanced.fleet.by_id[iid].lifecycle_state == "Pending:Wait"

    report = balanced.service().run()
    line = f"record {iid} (worker, joined, its launch action still open) as pending"
    assert report.to_dict() == whole(report, pending_joins=1, actions=[line])
    assert balanced.fleet.heartbeats == [iid]
    assert balanced.state.waiting["demo"] == {iid: _recorded_worker_launch(iid)}
    assert log(balanced) == [said(balanced, "lost-launch", line)]

    balanced.clock.advance(300)
    done = balanced.service().run()
    finished = f"pending {iid}: already_member (already a member with the right role)"
    assert done.to_dict() == whole(done, actions=[finished], joined=[d.to_dict() for d in done.joined])
    assert balanced.fleet.completions[-1] == (iid, LifecycleResult.CONTINUE, CompletionOutcome.COMPLETED)
    assert balanced.fleet.by_id[iid].lifecycle_state == "InService"
    assert balanced.state.pending("demo") == []


def in_service_stray(w: World, iid: str, group: str = "wrk") -> None:
    """An instance its group has in service that never joined the swarm."""
    w.fleet.launch(iid, group, B, "10.0.8.8")
    w.fleet.by_id[iid] = w.fleet.by_id[iid].model_copy(update={"lifecycle_state": "InService"})


def not_in_swarm(w: World, iid: str, role: str = "worker", dry_run: bool = False) -> Decision:
    detail = f"{iid} ({role}) is in service but not in the swarm: terminate it so that the group replaces it"
    return said(w, "not-in-swarm", detail, dry_run=dry_run)


def test_strays_are_reported_once_each_and_the_rest_of_the_group_is_still_looked_at(balanced: World) -> None:
    # a group of the cluster without a role (not autojoin's to manage) listed before the worker group
    balanced.fleet.add_group("misc", "demo", None, (A, B, C))
    balanced.fleet.groups = {k: balanced.fleet.groups[k] for k in ("mgr", "misc", "wrk")}
    balanced.fleet.launch("i-misc", "misc", A, "10.0.7.7")  # Pending:Wait in a group without a role
    in_service_stray(balanced, "i-stray1")
    balanced.fleet.launch("i-leaving", "wrk", C, "10.0.6.6")
    balanced.fleet.by_id["i-leaving"] = balanced.fleet.by_id["i-leaving"].model_copy(
        update={"lifecycle_state": "Terminating:Wait"}
    )
    lost1 = balanced.start(Role.WORKER, C)
    report = balanced.service().run()
    assert report.actions == (f"record {lost1} (worker, no join under way) as pending",)
    assert not_in_swarm(balanced, "i-stray1") in log(balanced)
    assert [a.instance_id for a, _ in balanced.state.pending("demo")] == [lost1]

    first_seen = not_in_swarm(balanced, "i-stray1")
    in_service_stray(balanced, "i-stray2")  # a second stray, seen by the next run
    lost2 = balanced.start(Role.WORKER, A)
    balanced.clock.advance(60)
    report = balanced.service().run()
    assert report.actions[-1] == f"record {lost2} (worker, no join under way) as pending"
    strays = [d for d in log(balanced) if d.kind == "not-in-swarm"]
    assert strays == [first_seen, not_in_swarm(balanced, "i-stray2")]
    assert "i-misc" not in {a.instance_id for a, _ in balanced.state.pending("demo")}
    balanced.clock.advance(60)
    balanced.service().run()
    assert [d for d in log(balanced) if d.kind == "not-in-swarm"] == strays, "each is reported only once"


def test_a_dry_run_reports_a_stray_as_a_dry_decision(balanced: World) -> None:
    in_service_stray(balanced, "i-stray", "mgr")
    balanced.fleet.groups["mgr"] = balanced.fleet.groups["mgr"].model_copy(update={"desired": 6})
    balanced.service(dry_run=True).run()
    assert not_in_swarm(balanced, "i-stray", "manager", dry_run=True) in log(balanced)


# --- drift --------------------------------------------------------------------------------------------


def drift(w: World) -> tuple[str, str, str]:
    """Two managers lose their protection, one node its labels; the node and its instance type."""
    mgrs = [i for i in w.fleet.by_id.values() if i.group == "mgr"]
    w.fleet.set_protection("mgr", [mgrs[1].instance_id, mgrs[3].instance_id], False)
    node_id = w.swarm.node_id_of(mgrs[2].instance_id)
    assert node_id is not None
    w.swarm.label(node_id, {"az": "somewhere-else", "asg": "other"})
    w.fleet.protection_calls.clear()
    return mgrs[1].instance_id, mgrs[3].instance_id, mgrs[2].instance_id


def test_drift_is_set_back_with_the_group_named_and_the_labels_shown(balanced: World) -> None:
    p1, p2, relabelled = drift(balanced)
    inst = balanced.fleet.by_id[relabelled]
    node_id = balanced.swarm.node_id_of(relabelled)
    report = balanced.service().run()
    shown = f"az={inst.az}, instance-id={relabelled}, asg=mgr, instance-type=t3.small"
    actions = [f"relabel {relabelled} ({shown})", f"protect {p1}, {p2} from scale-in again (mgr)"]
    assert report.to_dict() == whole(report, actions=actions)
    assert log(balanced) == [said(balanced, "labels", actions[0]), said(balanced, "protection", actions[1])]
    assert balanced.fleet.protection_calls == [("mgr", (p1, p2), True)]
    member = next(m for m in balanced.swarm.members() if m.node_id == node_id)
    assert {k: member.labels[k] for k in ("az", "instance-id", "asg", "instance-type")} == {
        "az": inst.az,
        "instance-id": relabelled,
        "asg": "mgr",
        "instance-type": "t3.small",
    }


def test_a_dry_run_sets_no_drift_back(balanced: World) -> None:
    p1, _p2, relabelled = drift(balanced)
    node_id = balanced.swarm.node_id_of(relabelled)
    report = balanced.service(dry_run=True).run()
    assert [a.split(" ")[:2] for a in report.actions] == [["would", "relabel"], ["would", "protect"]]
    assert balanced.fleet.protection_calls == []
    assert not balanced.fleet.by_id[p1].protected_from_scale_in
    member = next(m for m in balanced.swarm.members() if m.node_id == node_id)
    assert member.labels["az"] == "somewhere-else"


def test_an_unprotected_manager_is_no_drift_while_the_group_is_over_its_desired(balanced: World) -> None:
    """The guard released one for a scale-in: live (Pending*, InService, not gone) instances above desired."""
    mgrs = [i for i in balanced.fleet.by_id.values() if i.group == "mgr"]
    balanced.fleet.set_protection("mgr", [mgrs[0].instance_id], False)
    balanced.fleet.protection_calls.clear()
    grp = balanced.fleet.groups["mgr"]
    balanced.fleet.groups["mgr"] = grp.model_copy(update={"desired": 4})
    balanced.service().run()
    assert balanced.fleet.protection_calls == []


@pytest.mark.parametrize(
    ("extra", "surplus"),
    [
        ({"lifecycle_state": "Pending"}, True),
        ({"lifecycle_state": "InService"}, True),
        ({"lifecycle_state": "InService", "state": "terminated"}, False),
        ({"lifecycle_state": "Terminating:Wait"}, False),
        ({"lifecycle_state": None}, False),
    ],
)
def test_which_instances_count_as_live_for_the_surplus(
    balanced: World, extra: dict[str, Any], surplus: bool
) -> None:
    """One more instance in the manager group than desired makes an unprotected manager no drift only when
    that instance is live."""
    mgrs = [i for i in balanced.fleet.by_id.values() if i.group == "mgr"]
    balanced.fleet.set_protection("mgr", [mgrs[0].instance_id], False)
    balanced.fleet.protection_calls.clear()
    balanced.fleet.launch("i-extra", "mgr", C, "10.0.5.5")
    balanced.fleet.by_id["i-extra"] = balanced.fleet.by_id["i-extra"].model_copy(update=extra)
    balanced.service().run()
    assert balanced.fleet.protection_calls == ([] if surplus else [("mgr", (mgrs[0].instance_id,), True)])


# --- one rebalance step -------------------------------------------------------------------------------


def test_a_surge_then_a_retire_each_under_the_lease_with_every_call_named() -> None:
    w = make_world((A, B, C), {A: 3, B: 2})
    w.fleet.protection_calls.clear()
    report = w.service(lease_ttl=123).run()
    assert report.step is not None and report.step.kind is StepKind.LAUNCH and report.step.az == C
    launch = f"launch a manager into {C} (desired 6): {report.step.reason}"
    assert report.to_dict() == whole(
        report, zone_failures_tolerated=0, layout={A: 3, B: 2, C: 0}, actions=[launch]
    )
    assert w.fleet.desired_calls == [("mgr", 6)]
    assert w.state.lease_asks == [("demo", "reconcile", 123)] and w.state.leases == {}
    assert w.state.records["demo"].surge_from == 5
    assert log(w) == [said(w, "rebalance", launch)]

    w.join(Role.MANAGER, C)
    w.fleet.protection_calls.clear()
    report = w.service().run()
    assert report.step is not None and report.step.kind is StepKind.RETIRE
    victim = report.step.instance_id
    assert victim is not None and w.fleet.by_id[victim].az == A
    retire = f"retire {victim} from {A} through mgr: {report.step.reason}"
    assert report.to_dict() == whole(
        report,
        voters=6,
        healthy_managers=6,
        zone_failures_tolerated=0,
        layout={A: 3, B: 2, C: 1},
        actions=[retire],
    )
    assert w.fleet.protection_calls == [("mgr", (victim,), False)]
    assert w.fleet.terminated == [(victim, True)]
    assert log(w)[-1] == said(w, "rebalance", retire)
    assert w.state.leases == {}


def test_the_surge_is_remembered_before_the_group_is_asked() -> None:
    """A crash while raising desired leaves the surge recorded (no orphan surge) and the lease released."""
    w = make_world((A, B, C), {A: 3, B: 2})

    def broken(group: str, desired: int) -> None:
        raise RuntimeError("throttled")

    w.fleet.set_desired = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        w.service().run()
    assert w.state.records["demo"].surge_from == 5
    assert w.state.leases == {}


def test_a_dry_run_says_which_step_it_would_take() -> None:
    w = make_world((A, B, C), {A: 3, B: 2})
    report = w.service(dry_run=True).run()
    assert report.step is not None
    launch = f"would launch a manager into {C}: {report.step.reason}"
    assert report.actions == (launch,)
    assert log(w) == [said(w, "rebalance", launch, dry_run=True)]
    assert w.state.lease_asks == [] and w.fleet.desired_calls == []

    w.state.records["demo"] = ReconcileRecord(surge_from=5)
    w.fleet.set_desired("mgr", 6)
    w.join(Role.MANAGER, C)
    w.fleet.protection_calls.clear()
    report = w.service(dry_run=True).run()
    assert report.step is not None and report.step.kind is StepKind.RETIRE
    retire = f"would retire {report.step.instance_id}: {report.step.reason}"
    assert report.actions == (retire,)
    assert log(w)[-1] == said(w, "rebalance", retire, dry_run=True)
    assert w.fleet.protection_calls == [] and w.fleet.terminated == []


def test_a_held_lease_skips_the_step_and_says_so() -> None:
    w = make_world((A, B, C), {A: 3, B: 2})
    w.state.leases["demo"] = "on_terminate:i-1"
    report = w.service().run()
    skip = f"skip launch in {C}: the cluster lease is held"
    assert report.actions == (skip,)
    assert log(w) == [said(w, "rebalance", skip)]
    assert w.state.leases == {"demo": "on_terminate:i-1"}


# --- dead nodes ---------------------------------------------------------------------------------------


def kill(w: World, iid: str, *, forget: bool = False, wait: bool = True) -> None:
    """The instance is terminated (and, with ``forget``, gone from its group's list) and its node Down."""
    w.swarm.crash(iid)
    update: dict[str, Any] = {"state": "terminated", "lifecycle_state": "Terminating:Proceed"}
    if forget:
        update["group"] = None
    w.fleet.by_id[iid] = w.fleet.by_id[iid].model_copy(update=update)
    if wait:
        w.clock.advance(120)


def remover(w: World, asked: list[list[str]], *, remove: bool = True) -> Any:
    def remove_dead(members: Sequence[Member]) -> list[DeadNode]:
        asked.append([m.node_id for m in members])
        out = []
        for m in members:
            inst = w.fleet.by_id.get(m.instance_id or "")
            if inst is not None and inst.gone:
                if remove:
                    w.swarm.remove(m.node_id)
                out.append(DeadNode(m.node_id, inst.instance_id, m.role, remove, "its instance is gone"))
        return out

    return remove_dead


def workers(w: World) -> list[str]:
    return [i.instance_id for i in w.fleet.by_id.values() if i.group == "wrk"]


def count_reads(w: World) -> list[int]:
    """Every ``members()`` read of the orchestrator (each one a remote command on a manager)."""
    reads: list[int] = []
    real = w.swarm.members

    def members() -> Sequence[Member]:
        reads.append(1)
        return real()

    w.swarm.members = members  # type: ignore[method-assign]
    return reads


def test_a_dead_node_is_removed_and_the_members_read_again_for_the_snapshot(balanced: World) -> None:
    victim = workers(balanced)[0]
    kill(balanced, victim)
    asked: list[list[str]] = []
    reads = count_reads(balanced)
    report = balanced.service(remove_dead=remover(balanced, asked)).run()
    line = f"dead node {victim} (worker): removed, its instance is gone"
    assert report.to_dict() == whole(report, actions=[line])
    assert log(balanced) == [said(balanced, "dead-node", line)]
    snap = balanced.state.views["demo"]
    assert snap.node(victim) is None and snap.taken_at == balanced.clock.now()
    assert len(asked) == 1 and len(asked[0]) == 7
    assert len(reads) == 2


def test_a_dead_node_the_removal_keeps_is_reported_kept(balanced: World) -> None:
    victim = workers(balanced)[0]
    kill(balanced, victim)
    asked: list[list[str]] = []
    reads = count_reads(balanced)
    report = balanced.service(remove_dead=remover(balanced, asked, remove=False)).run()
    line = f"dead node {victim} (worker): kept, its instance is gone"
    assert report.actions == (line,)
    assert log(balanced) == [said(balanced, "dead-node", line)]
    assert balanced.state.views["demo"].node(victim) is not None
    assert len(reads) == 1, "nothing removed: the members are not read again"


def test_dead_nodes_without_a_removal_or_in_a_dry_run_are_only_named(balanced: World) -> None:
    first, second = workers(balanced)
    kill(balanced, first, wait=False)
    kill(balanced, second, forget=True)  # gone from the group: EC2 says it is terminated
    reads = count_reads(balanced)
    report = balanced.service().run()
    assert sorted(report.actions) == sorted(
        f"remove dead node {iid} (worker) (no removal wired)" for iid in (first, second)
    )
    assert log(balanced) == [said(balanced, "dead-node", a) for a in report.actions]
    asked: list[list[str]] = []
    dry = balanced.service(dry_run=True, remove_dead=remover(balanced, asked)).run()
    assert sorted(dry.actions) == sorted(f"would remove dead node {iid} (worker)" for iid in (first, second))
    assert log(balanced)[-2:] == [said(balanced, "dead-node", a, dry_run=True) for a in dry.actions]
    assert asked == []
    assert len(reads) == 2, "one read per run"


def test_only_a_down_node_whose_instance_is_gone_everywhere_is_dead() -> None:
    """Down with its instance alive (in its group, or only known to EC2) is not dead; EC2 is asked only
    about the nodes no group lists."""
    w = make_world((A, B, C), {A: 2, B: 2, C: 1}, workers=4)
    # the view lists nodes by node id: the live ones first, so that the dead ones come after them
    rebooting, moved, terminated, vanished = sorted(workers(w), key=lambda iid: w.swarm.node_id_of(iid) or "")
    w.swarm.crash(rebooting)  # in its group, still running: a reboot, not a death
    w.swarm.crash(moved)
    w.fleet.by_id[moved] = w.fleet.by_id[moved].model_copy(update={"group": None})  # still running
    kill(w, terminated, forget=True, wait=False)
    w.swarm.crash(vanished)
    del w.fleet.by_id[vanished]  # EC2 no longer knows it
    w.clock.advance(120)
    asked_ec2: list[str] = []
    real = w.fleet.instance

    def instance(instance_id: str) -> InstanceInfo | None:
        asked_ec2.append(instance_id)
        return real(instance_id)

    w.fleet.instance = instance  # type: ignore[method-assign]
    report = w.service().run()
    assert sorted(report.actions) == sorted(
        f"remove dead node {iid} (worker) (no removal wired)" for iid in (terminated, vanished)
    )
    assert sorted(asked_ec2) == sorted([moved, terminated, vanished])


def test_nothing_dead_reads_the_members_once(balanced: World) -> None:
    reads = count_reads(balanced)
    asked: list[list[str]] = []
    balanced.service(remove_dead=remover(balanced, asked)).run()
    assert reads == [1] and asked == []
