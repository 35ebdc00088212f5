"""RemovalService over the in-memory SimSwarm: graceful manager and worker removal, waiting, retention,
dead-node cleanup, scale-in protection, the lease, and only autojoin's own hooks."""

from __future__ import annotations

from tests.unit.services.removal_world import ZONES, World

from autojoin.domain.model import InstanceInfo, LifecycleAction, LifecycleKind, LifecycleResult, Role
from autojoin.ports import CompletionOutcome
from autojoin.services.removal import Outcome


def test_a_manager_is_drained_demoted_awaited_left_and_removed_then_continued() -> None:
    w = World()
    decision = w.svc.handle(w.terminate("i-m4"), "h1")
    assert decision.outcome is Outcome.REMOVED, decision.reason
    assert decision.steps == ("drain", "demote", "demotion-effective", "leave", "rm")
    assert decision.result is LifecycleResult.CONTINUE
    assert "i-m4" not in w.roles()
    assert w.h.swarm.has_leader()
    assert w.state.leases == {}  # released
    assert w.state.views["demo"].taken_at is not None  # the snapshot is refreshed


def test_three_at_once_with_decrement_two_go_and_the_third_is_retained() -> None:
    w = World(desired=2)
    results = [w.svc.handle(w.terminate(i), f"h-{i}") for i in ("i-m1", "i-m2", "i-m3")]
    assert [r.outcome for r in results] == [Outcome.REMOVED, Outcome.REMOVED, Outcome.RETAINED]
    retained = results[2]
    assert retained.result is LifecycleResult.ABANDON
    assert "below MinManagers 3" in retained.reason
    assert retained.operator_action and "docker node demote" in retained.operator_action
    assert w.h.swarm.has_leader()
    assert sum(1 for r in w.roles().values() if r is Role.MANAGER) == 3


def test_an_unsafe_removal_waits_for_its_replacement_then_finishes_on_the_tick() -> None:
    w = World(managers=3, desired=3)  # desired unchanged: a replacement is coming
    action = w.terminate("i-m3")
    first = w.svc.handle(action, "h1")
    assert first.outcome is Outcome.WAITING, first.reason
    assert "i-m3" in w.fleet.heartbeats and w.state.removals("demo")
    # the replacement joins as a manager in the same AZ
    w.h.add("i-m6", Role.MANAGER)
    w.h.swarm.label(w.h.nid("i-m6"), {"instance-id": "i-m6", "az": "c"})
    w.fleet.by_id["i-m6"] = InstanceInfo(
        instance_id="i-m6", az="c", group="demo-manager", lifecycle_state="InService"
    )
    report = w.svc.tick("guard")
    assert [d.outcome for d in report.resumed] == [Outcome.REMOVED]
    assert not w.state.removals("demo")


def test_a_waiting_removal_is_retained_once_its_wait_runs_out() -> None:
    w = World(managers=3, desired=3)
    action = w.terminate("i-m3")
    assert w.svc.handle(action, "h1").outcome is Outcome.WAITING
    w.h.clock.advance(w.svc.config.removal_wait + 1)
    (late,) = w.svc.resume_waiting("guard")
    assert late.outcome is Outcome.RETAINED


def test_contenders_wait_while_the_lease_is_held() -> None:
    w = World()
    w.state.acquire_lease("demo", "someone-else", 300)
    decision = w.svc.handle(w.terminate("i-m4"), "h1")
    assert decision.outcome is Outcome.WAITING and "someone-else" in decision.reason
    assert w.roles()["i-m4"] is Role.MANAGER  # nothing was done without the lease


def test_a_worker_is_drained_before_it_leaves() -> None:
    w = World(workers=2)
    decision = w.svc.handle(w.terminate("i-w1"), "h1")
    assert decision.outcome is Outcome.REMOVED
    assert decision.steps[:2] == ("drain", "leave")


def test_another_teams_hook_and_a_warm_pool_terminate() -> None:
    w = World()
    ignored = w.svc.handle(w.terminate("i-m4", hook="their-hook"), "h1")
    assert ignored.outcome is Outcome.IGNORED and ignored.completion is None
    assert not w.fleet.completions
    action = w.terminate("i-m5").model_copy(update={"origin": "AutoScalingGroup", "destination": "WarmPool"})
    warm = w.svc.handle(action, "h1")
    assert warm.outcome is Outcome.WARM_POOL and w.roles()["i-m5"] is Role.MANAGER


def test_dead_nodes_of_gone_instances_are_demoted_and_removed() -> None:
    w = World()
    w.h.swarm.crash("i-m5")
    w.h.clock.advance(30)
    w.fleet.by_id["i-m5"] = w.fleet.by_id["i-m5"].model_copy(update={"state": "terminated"})
    dead = w.svc.remove_dead_nodes("reconciler")
    assert [(d.instance_id, d.removed) for d in dead] == [("i-m5", True)]
    assert "i-m5" not in w.roles()


def test_protection_is_lifted_from_one_chosen_manager_only() -> None:
    w = World(desired=3)
    report = w.svc.tick("guard")
    assert report.released in {"i-m1", "i-m2", "i-m4", "i-m5"}  # never i-m3, the lone manager of AZ c
    assert list(w.fleet.protection.values()) == [False]
    w.fleet.by_id[report.released] = w.fleet.by_id[report.released].model_copy(
        update={"protected_from_scale_in": False}
    )
    assert w.svc.tick("guard").released is None  # one at a time


def test_at_the_floor_nothing_is_released_and_the_reason_is_given() -> None:
    w = World(managers=3, desired=1)
    report = w.svc.tick("guard")
    assert report.released is None
    assert report.blocked and "MinManagers" in report.blocked


def test_removals_that_waited_together_keep_the_one_whose_removal_hurts_most() -> None:
    w = World(desired=2)
    assert w.svc.handle(w.terminate("i-m1"), "h1").outcome is Outcome.REMOVED  # 2-2-1 -> 1-2-1
    w.state.acquire_lease("demo", "busy", 300)  # the other two arrive while another change holds it
    lone, spare = w.terminate("i-m3"), w.terminate("i-m2")  # c's only manager first, then one of b's
    assert w.svc.handle(lone, "h2").outcome is Outcome.WAITING
    assert w.svc.handle(spare, "h3").outcome is Outcome.WAITING
    w.state.release_lease("demo", "busy")
    outcomes = {d.instance_id: d.outcome for d in w.svc.resume_waiting("guard")}
    assert outcomes == {"i-m2": Outcome.REMOVED, "i-m3": Outcome.RETAINED}
    zones = sorted(m.labels["az"] for m in w.h.swarm.members() if m.role is Role.MANAGER)
    assert zones == ["a", "b", "c"]  # 1-1-1, not 1-2-0


def test_a_worker_drain_is_bounded_and_keeps_the_hook_alive() -> None:
    w = World(workers=1)

    class Busy(type(w.h.swarm)):  # type: ignore[misc]
        def running_tasks(self, node_id: str) -> int:
            return 2  # tasks that never move

    w.h.swarm.__class__ = Busy
    decision = w.svc.handle(w.terminate("i-w1"), "h1")
    assert decision.outcome is Outcome.REMOVED
    assert decision.reason.startswith("drain timed out")
    assert decision.steps[:2] == ("drain", "leave")
    # 300 s of drain at one heartbeat a minute
    assert w.fleet.heartbeats.count("i-w1") == int(w.svc.config.drain_timeout // w.svc.config.heartbeat_every)


def test_the_tick_works_terminate_actions_whose_event_was_lost_once() -> None:
    w = World(workers=2)
    w.fleet.add_group("other-worker", "other", Role.WORKER, ZONES)
    w.fleet.by_id["i-x1"] = InstanceInfo(
        instance_id="i-x1", az="a", group="other-worker", lifecycle_state="Terminating:Wait"
    )
    w.fleet.open_actions.add("i-x1")
    late = {iid: w.terminate(iid) for iid in ("i-m4", "i-w1")}  # their events never arrive
    report = w.svc.tick("guard")
    swept = {d.instance_id: d for d in report.resumed}
    assert set(swept) == {"i-m4", "i-w1"}  # not the other cluster's instance
    assert swept["i-m4"].steps == ("drain", "demote", "demotion-effective", "leave", "rm")
    assert swept["i-w1"].outcome is Outcome.REMOVED and swept["i-w1"].steps[:2] == ("drain", "leave")
    assert {"i-m4", "i-w1"}.isdisjoint(w.roles())
    assert w.fleet.open_actions == {"i-x1"}
    # the lost events arrive late after all (the instances are Terminating:Proceed): nothing is done twice
    for action in late.values():
        again = w.svc.handle(action, "h1")
        assert (again.outcome, again.completion, again.error) == (Outcome.IGNORED, None, "NotTerminating")
    done = [(i, o) for i, _, o in w.fleet.completions if o is CompletionOutcome.COMPLETED]
    assert sorted(done) == [("i-m4", CompletionOutcome.COMPLETED), ("i-w1", CompletionOutcome.COMPLETED)]
    assert w.state.leases == {}


def test_a_terminate_event_for_an_instance_that_is_not_terminating_removes_nothing() -> None:
    # found by fuzzing: a terminate event for an in-service worker drained and removed it
    w = World(workers=2)
    before = w.roles()
    action = LifecycleAction(
        kind=LifecycleKind.TERMINATING,
        group="demo-worker",
        instance_id="i-w1",
        hook=w.svc.config.terminate_hook,
        token="t-stale",
    )
    decision = w.svc.handle(action, "h1")
    assert decision.outcome is Outcome.IGNORED and decision.error == "NotTerminating"
    assert "not Terminating:Wait: nothing removed" in decision.reason
    assert w.roles() == before and w.fleet.completions == []
