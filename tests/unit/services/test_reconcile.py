"""ReconcileService against in-memory fakes and the SimSwarm: snapshot, metrics, lost launches, drift,
one rebalance step under the lease, dry-run."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from tests.unit.services.reconcile_world import A, B, C, World, make_world

from autojoin.domain.model import LifecycleResult, Role
from autojoin.domain.rebalance import ReconcileRecord
from autojoin.ports import Member
from autojoin.services.launch import Outcome
from autojoin.services.removal import DeadNode


@pytest.fixture
def balanced() -> World:
    return make_world((A, B, C), {A: 2, B: 2, C: 1}, workers=2)


def test_snapshot_and_numbers(balanced: World) -> None:
    report = balanced.service().run()
    snap = balanced.state.snapshot("demo")
    assert snap is not None and snap.taken_at == balanced.clock.now()
    assert len(snap.managers()) == 5 and len(snap.workers()) == 2
    assert snap.manager_layout() == {A: 2, B: 2, C: 1}
    assert all(n.reachable and n.available for n in snap.nodes)
    assert report.healthy_managers == 5 and report.voters == 5
    assert report.quorum_margin == 2 and report.zone_failures_tolerated == 1
    assert report.best_zone_failures == 1 and report.leader_az == A
    assert report.pending_joins == 0
    assert report.step is not None and report.step.kind.value == "none"
    assert report.actions == ()
    assert balanced.fleet.desired_calls == [] and balanced.fleet.terminated == []


def test_a_launch_whose_event_was_lost_is_recorded_then_joined(balanced: World) -> None:
    iid = balanced.start(Role.WORKER, C)  # Pending:Wait, nobody ever handles its event
    first = balanced.service().run()
    assert [a.instance_id for a, _ in balanced.state.pending("demo")] == [iid]
    assert balanced.swarm.node_id_of(iid) is None, "recorded only: a launch in progress is not joined twice"
    assert first.pending_joins == 1
    second = balanced.service().run()
    assert balanced.swarm.node_id_of(iid) is not None
    assert (iid, LifecycleResult.CONTINUE) in [(i, r) for i, r, _ in balanced.fleet.completions]
    assert balanced.state.pending("demo") == []
    assert [d.outcome for d in second.joined] == [Outcome.JOINED]
    assert second.pending_joins == 0


def test_a_launch_handled_in_between_is_not_joined_again(balanced: World) -> None:
    iid = balanced.start(Role.WORKER, C)
    balanced.service().run()
    balanced.launch.handle(balanced.action(iid))  # the event was late, not lost
    assert balanced.state.pending("demo") == []
    report = balanced.service().run()
    assert report.joined == ()


def test_protection_and_labels_that_drifted_are_set_back(balanced: World) -> None:
    victim = next(i for i in balanced.fleet.by_id.values() if i.group == "mgr")
    balanced.fleet.set_protection("mgr", [victim.instance_id], False)
    node_id = balanced.swarm.node_id_of(victim.instance_id)
    assert node_id is not None
    balanced.swarm.label(node_id, {"az": "somewhere-else"})
    report = balanced.service().run()
    assert balanced.fleet.by_id[victim.instance_id].protected_from_scale_in
    member = next(m for m in balanced.swarm.members() if m.node_id == node_id)
    assert member.labels["az"] == victim.az
    assert any("protect" in a for a in report.actions) and any("relabel" in a for a in report.actions)


def test_3_2_with_a_third_az_surges_then_retires_under_the_lease() -> None:
    w = make_world((A, B, C), {A: 3, B: 2})
    report = w.service().run()
    assert w.fleet.desired_calls == [("mgr", 6)]
    assert w.state.records["demo"].surge_from == 5
    assert "launch a manager into us-east-1c" in report.actions[0]
    assert w.state.leases == {}, "the lease is released after the step"
    # the group launched into C and the new manager joined
    w.join(Role.MANAGER, C)
    report = w.service().run()
    assert report.target == 5
    assert len(w.fleet.terminated) == 1
    gone, decrement = w.fleet.terminated[0]
    assert decrement and w.fleet.by_id[gone].az == A
    assert w.fleet.protection[gone] is False
    assert w.fleet.groups["mgr"].desired == 5


def test_no_step_while_another_holds_the_lease() -> None:
    w = make_world((A, B, C), {A: 3, B: 2})
    w.state.leases["demo"] = "on_terminate:i-1"
    report = w.service().run()
    assert w.fleet.desired_calls == []
    assert "lease is held" in report.actions[-1]
    assert w.state.records["demo"].surge_from is None


def test_dry_run_decides_and_changes_nothing() -> None:
    w = make_world((A, B, C), {A: 3, B: 2}, workers=1)
    victim = next(i for i in w.fleet.by_id.values() if i.group == "mgr")
    w.fleet.set_protection("mgr", [victim.instance_id], False)
    lost = w.start(Role.WORKER, B)
    report = w.service(dry_run=True).run()
    assert w.fleet.desired_calls == [] and w.fleet.terminated == []
    assert not w.fleet.by_id[victim.instance_id].protected_from_scale_in
    assert w.state.pending("demo") == [] and w.swarm.node_id_of(lost) is None
    assert w.state.records["demo"].surge_from is None
    assert report.dry_run and all(a.startswith("would ") for a in report.actions)
    kinds = {a.split(" ")[1] for a in report.actions}
    assert {"record", "protect", "launch"} <= kinds
    assert all(d.dry_run for d in w.state.records["demo"].decisions)


def test_an_impaired_az_freezes_rebalancing_until_it_settled() -> None:
    w = make_world((A, B, C), {A: 3, B: 2, C: 0})
    for m in w.fleet.by_id.values():
        if m.az == B:
            w.swarm.crash(m.instance_id)
    w.clock.advance(120)
    report = w.service().run()
    assert report.impaired == (B,)
    assert report.step is not None and report.step.kind.value == "wait"
    assert w.fleet.desired_calls == []
    for m in w.fleet.by_id.values():
        if m.az == B:
            w.swarm.restart(m.instance_id)
    w.clock.advance(300)
    assert w.service().run().impaired == (B,), "looking good for 0 s"
    w.clock.advance(600)
    assert w.service().run().impaired == (B,), "looking good for 600 s of 900"
    w.clock.advance(300)
    report = w.service().run()
    assert report.impaired == ()
    assert report.step is not None and "settling" in report.step.reason
    assert w.fleet.desired_calls == []
    w.clock.advance(900)
    w.service().run()
    assert w.fleet.desired_calls == [("mgr", 6)]


def test_no_leader_changes_nothing() -> None:
    w = make_world((A, B, C), {A: 2, B: 1})
    for m in list(w.fleet.by_id.values())[:2]:
        w.swarm.crash(m.instance_id)
    w.clock.advance(120)
    report = w.service().run()
    assert not report.has_leader and report.error is not None
    assert report.quorum_margin == -1
    assert w.fleet.desired_calls == []


def test_dead_nodes_go_to_the_removal_it_is_given(balanced: World) -> None:
    victim = next(i for i in balanced.fleet.by_id.values() if i.group == "wrk")
    balanced.swarm.crash(victim.instance_id)
    balanced.fleet.by_id[victim.instance_id] = victim.model_copy(update={"state": "terminated"})
    balanced.clock.advance(120)
    node_id = balanced.swarm.node_id_of(victim.instance_id)
    assert node_id is not None
    asked: list[int] = []

    def remove(members: Sequence[Member]) -> list[DeadNode]:
        asked.append(len(members))
        balanced.swarm.remove(node_id)
        return [DeadNode(node_id, victim.instance_id, Role.WORKER, True, "rm")]

    service = balanced.service()
    service.remove_dead = remove
    report = service.run()
    assert asked == [7]
    assert any("removed" in a and victim.instance_id in a for a in report.actions)
    snap = balanced.state.snapshot("demo")
    assert snap is not None and snap.node(victim.instance_id) is None, "the snapshot is taken after cleanup"
    dry = balanced.service(dry_run=True)
    dry.remove_dead = remove
    dry.run()
    assert asked == [7], "dry-run asks nobody to remove anything"


def test_the_decision_log_is_kept_short() -> None:
    record = ReconcileRecord()
    w = make_world((A, B, C), {A: 3, B: 2})
    w.state.leases["demo"] = "someone"
    for _ in range(30):
        w.service().run()
    record = w.state.records["demo"]
    assert 0 < len(record.decisions) <= 20


def test_an_in_service_instance_outside_the_swarm_is_reported_not_joined(balanced: World) -> None:
    victim = next(i for i in balanced.fleet.by_id.values() if i.group == "mgr" and i.az == C)
    node_id = balanced.swarm.node_id_of(victim.instance_id)
    assert node_id is not None
    balanced.swarm.demote(node_id)
    balanced.swarm.leave(victim.instance_id)
    balanced.clock.advance(120)
    balanced.swarm.remove(node_id)  # gone from the member list; the instance stays InService
    for _ in range(2):
        report = balanced.service().run()
    assert report.voters == 4 and report.joined == ()
    assert balanced.state.pending("demo") == [], "no ticket for an instance its group is not launching"
    record = balanced.state.records["demo"]
    assert any(d.kind == "not-in-swarm" and victim.instance_id in d.detail for d in record.decisions)
