"""RemovalService's decisions as whole values: every field of the RemovalDecision of each path of a
terminate action (ignored, warm pool, worker, manager: removed, waiting, retained, gone), and the calls it
made on the fakes (completions, heartbeats, lease, removal records)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from tests.unit.services.removal_world import World

from autojoin.domain.model import InstanceInfo, LifecycleAction, LifecycleKind, LifecycleResult, Role
from autojoin.errors import DemotionWouldLoseQuorum, NoLeader, Unreachable
from autojoin.ports import CompletionOutcome, Member
from autojoin.services.removal import DeadNode, Outcome, RemovalDecision, TickReport

CONTINUE, ABANDON = LifecycleResult.CONTINUE, LifecycleResult.ABANDON
COMPLETED = CompletionOutcome.COMPLETED


def todo(iid: str) -> str:
    return (
        f"{iid} is retained (lifecycle state Retained) and is still a swarm manager. Restore the cluster "
        "(raise the manager group's desired capacity, or wait for replacements to join), then remove it: "
        f"`docker node demote <its node>` on a manager, `docker swarm leave` on {iid}, `docker node rm`, "
        f"and `aws autoscaling terminate-instance-in-auto-scaling-group --instance-id {iid} "
        "--no-should-decrement-desired-capacity` (autojoin's terminate hook then finishes it)."
    )


# --- the dicts ----------------------------------------------------------------------------------------


def test_a_decision_and_a_tick_report_as_dicts_have_every_field() -> None:
    inner = RemovalDecision(Outcome.WAITING, "not safe yet", "i-2", Role.MANAGER, "b", error="Retry")
    decision = RemovalDecision(
        Outcome.RETAINED,
        "cannot be made safe",
        "i-1",
        Role.MANAGER,
        "a",
        ABANDON,
        COMPLETED,
        ("drain", "demote"),
        -1,
        "LeaseLost",
        "do this",
        (inner,),
    )
    inner_dict: dict[str, object] = {
        "outcome": "waiting",
        "reason": "not safe yet",
        "instance_id": "i-2",
        "role": "manager",
        "az": "b",
        "result": None,
        "completion": None,
        "steps": [],
        "margin_after": None,
        "error": "Retry",
        "operator_action": None,
        "also": [],
    }
    assert decision.to_dict() == {
        "outcome": "retained",
        "reason": "cannot be made safe",
        "instance_id": "i-1",
        "role": "manager",
        "az": "a",
        "result": "ABANDON",
        "completion": "completed",
        "steps": ["drain", "demote"],
        "margin_after": -1,
        "error": "LeaseLost",
        "operator_action": "do this",
        "also": [inner_dict],
    }
    dead = DeadNode("n1", "i-3", Role.WORKER, True, "drain leave rm")
    report = TickReport((inner,), (dead,), "i-4", "why not", 2, "NoLeader")
    assert report.to_dict() == {
        "resumed": [inner_dict],
        "dead": [
            {
                "node_id": "n1",
                "instance_id": "i-3",
                "role": Role.WORKER,
                "removed": True,
                "reason": "drain leave rm",
            }
        ],
        "released": "i-4",
        "blocked": "why not",
        "margin": 2,
        "error": "NoLeader",
    }


# --- not autojoin's to remove -------------------------------------------------------------------------


def test_actions_that_are_not_autojoins_terminate_hook_are_ignored_whole() -> None:
    w = World()
    term = w.terminate("i-m4")
    assert w.svc.handle(term.model_copy(update={"kind": LifecycleKind.TEST}), "h") == RemovalDecision(
        Outcome.IGNORED, "test notification: nothing to complete"
    )
    assert w.svc.handle(term.model_copy(update={"kind": LifecycleKind.LAUNCHING}), "h") == RemovalDecision(
        Outcome.IGNORED, "not a terminate lifecycle action", "i-m4"
    )
    assert w.svc.handle(term.model_copy(update={"hook": "theirs"}), "h") == RemovalDecision(
        Outcome.IGNORED, "hook theirs is not autojoin's (autojoin-terminate): not completed", "i-m4"
    )
    w.fleet.add_group("other", "other-cluster", Role.MANAGER, ("a",))
    w.fleet.add_group("roleless", "demo", None, ("a",))
    for group in ("nope", "other", "roleless"):
        assert w.svc.handle(term.model_copy(update={"group": group}), "h") == RemovalDecision(
            Outcome.IGNORED, f"group {group} is not a group of cluster demo: not completed", "i-m4"
        )
    assert w.fleet.completions == [] and w.roles()["i-m4"] is Role.MANAGER


def test_a_terminate_into_the_warm_pool_is_continued_whole() -> None:
    w = World()
    action = w.terminate("i-m5").model_copy(update={"destination": "WarmPool"})
    assert w.svc.handle(action, "h") == RemovalDecision(
        Outcome.WARM_POOL,
        "terminate into the warm pool is not a removal",
        "i-m5",
        Role.MANAGER,
        result=CONTINUE,
        completion=COMPLETED,
    )
    assert w.fleet.completions == [("i-m5", CONTINUE, COMPLETED)]


@pytest.mark.parametrize(("state", "shown"), [("InService", "InService"), (None, "in no lifecycle state")])
def test_an_instance_that_is_not_terminating_is_ignored_whole(state: str | None, shown: str) -> None:
    w = World(workers=2)
    action = w.terminate("i-w2")
    w.fleet.by_id["i-w2"] = w.fleet.by_id["i-w2"].model_copy(update={"lifecycle_state": state})
    assert w.svc.handle(action, "h") == RemovalDecision(
        Outcome.IGNORED,
        f"instance i-w2 is {shown}, not Terminating:Wait: nothing removed",
        "i-w2",
        Role.WORKER,
        "a",
        error="NotTerminating",
    )


def test_an_instance_that_is_gone_or_unknown_is_removed_whatever_its_lifecycle_state() -> None:
    w = World(workers=2)
    first, second = w.terminate("i-w1"), w.terminate("i-w2")
    w.fleet.by_id["i-w1"] = w.fleet.by_id["i-w1"].model_copy(
        update={"state": "shutting-down", "lifecycle_state": "InService"}
    )
    del w.fleet.by_id["i-w2"]  # unknown to EC2 (its action is answered all the same)
    w.fleet.open_actions.discard("i-w2")
    assert w.svc.handle(first, "h").outcome is Outcome.REMOVED
    assert w.svc.handle(second, "h").outcome is Outcome.REMOVED
    assert {"i-w1", "i-w2"}.isdisjoint(w.roles())


# --- workers ------------------------------------------------------------------------------------------


def test_a_worker_removal_whole() -> None:
    w = World(workers=2)
    assert w.svc.handle(w.terminate("i-w1"), "h") == RemovalDecision(
        Outcome.REMOVED,
        "drained, left and removed",
        "i-w1",
        Role.WORKER,
        "c",
        CONTINUE,
        COMPLETED,
        ("drain", "leave", "rm"),
    )
    assert w.fleet.completions == [("i-w1", CONTINUE, COMPLETED)]
    assert w.state.lease_asks == [], "a worker's removal changes no quorum: no lease"


def test_a_drained_worker_is_not_drained_again() -> None:
    w = World(workers=1)
    drains: list[str] = []
    real = w.h.swarm.drain

    def drain(node_id: str) -> None:
        drains.append(node_id)
        real(node_id)

    w.h.swarm.drain = drain  # type: ignore[method-assign]
    node = w.h.nid("i-w1")
    real(node)
    decision = w.svc.handle(w.terminate("i-w1"), "h")
    assert (decision.reason, decision.steps, drains) == (
        "drained, left and removed",
        ("drain", "leave", "rm"),
        [],
    )


def test_a_worker_that_never_joined_is_continued_as_no_member() -> None:
    w = World(workers=1)
    w.fleet.by_id["i-w9"] = InstanceInfo(instance_id="i-w9", az="a", group="demo-worker")
    assert w.svc.handle(w.terminate("i-w9"), "h") == RemovalDecision(
        Outcome.NOT_MEMBER, "not a swarm member", "i-w9", Role.WORKER, "a", CONTINUE, COMPLETED
    )


@pytest.mark.parametrize("error", [NoLeader, Unreachable])
def test_a_worker_leaves_without_drain_when_the_cluster_cannot_answer(error: type[Exception]) -> None:
    w = World(workers=1)

    def members() -> list[Member]:
        raise error("down")

    w.h.swarm.members = members  # type: ignore[method-assign]
    name = error.__name__
    assert w.svc.handle(w.terminate("i-w1"), "h") == RemovalDecision(
        Outcome.REMOVED,
        f"cluster unavailable ({name}): left without drain",
        "i-w1",
        Role.WORKER,
        "c",
        CONTINUE,
        COMPLETED,
        ("leave",),
        error=name,
    )


def test_a_worker_removal_that_fails_half_way_is_continued_and_left_to_the_reconciler() -> None:
    w = World(workers=1)

    def remove(node_id: str) -> None:
        raise Unreachable("ssm")

    w.h.swarm.remove = remove  # type: ignore[method-assign]
    assert w.svc.handle(w.terminate("i-w1"), "h") == RemovalDecision(
        Outcome.REMOVED,
        "removal incomplete (Unreachable); the reconciler removes the node once it is Down",
        "i-w1",
        Role.WORKER,
        "c",
        CONTINUE,
        COMPLETED,
        ("drain", "leave"),
        error="Unreachable",
    )


def test_a_machine_that_cannot_be_reached_to_leave_is_noted_and_still_removed() -> None:
    w = World(workers=1)

    def leave(instance_id: str, *, force: bool = False) -> None:
        raise Unreachable("dead machine")

    w.h.swarm.leave = leave  # type: ignore[method-assign]
    w.h.swarm.crash("i-w1")
    w.h.clock.advance(30)
    decision = w.svc.handle(w.terminate("i-w1"), "h")
    assert (decision.reason, decision.steps) == (
        "drained, left and removed",
        ("drain", "leave-skipped-unreachable", "rm"),
    )


@pytest.mark.parametrize("wait", [3.0, 4.0])
def test_a_node_that_does_not_go_down_in_time_is_left_to_dead_node_cleanup(wait: float) -> None:
    """rm is tried every poll (2 s) until node_down_wait has passed, that moment included: at 0, 2 and 4 s
    for a wait of 3 s as for one of 4 s (the swarm shows the node Down only after 10 s)."""
    w = World(workers=1)
    w.svc.config = replace(w.svc.config, node_down_wait=wait)
    start = w.h.clock.now()
    decision = w.svc.handle(w.terminate("i-w1"), "h")
    assert decision.steps == ("drain", "leave", "rm-deferred")
    assert w.h.clock.now() - start == timedelta(seconds=4)
    assert "i-w1" in w.roles()


def test_rm_is_retried_every_poll_until_the_node_is_down() -> None:
    w = World(workers=1)
    start = w.h.clock.now()
    decision = w.svc.handle(w.terminate("i-w1"), "h")
    assert decision.steps == ("drain", "leave", "rm")
    assert w.h.clock.now() - start == timedelta(seconds=10), "Down after the swarm's 10 s, polled every 2 s"


# --- managers -----------------------------------------------------------------------------------------


def test_a_manager_removal_whole_under_the_lease_renewed_between_steps() -> None:
    w = World()
    assert w.svc.handle(w.terminate("i-m4"), "h1") == RemovalDecision(
        Outcome.REMOVED,
        "demoted, left and removed",
        "i-m4",
        Role.MANAGER,
        "a",
        CONTINUE,
        COMPLETED,
        ("drain", "demote", "demotion-effective", "leave", "rm"),
        margin_after=1,
    )
    assert w.state.lease_asks == [("demo", "h1", 300)] * 3  # taken, renewed before demote and before leave
    assert w.state.leases == {} and w.state.removals("demo") == []
    snap = w.state.views["demo"]
    assert snap.taken_at == w.h.clock.now() and snap.node("i-m4") is None and len(snap.managers()) == 4


def test_a_manager_removal_waits_for_its_replacement_whole() -> None:
    w = World(managers=3, desired=3)
    action = w.terminate("i-m3")
    why = "not safe yet: it would leave 2 healthy managers, below MinManagers 3; a replacement is coming"
    assert w.svc.handle(action, "h1") == RemovalDecision(
        Outcome.WAITING, f"{why} (waiting 0s of 2700s; hook kept alive)", "i-m3", Role.MANAGER, "c"
    )
    started = w.h.clock.now()
    w.h.clock.advance(100)
    assert w.svc.handle(action, "h1").reason == f"{why} (waiting 100s of 2700s; hook kept alive)"
    assert w.state.removals("demo") == [(action, started)]
    assert w.fleet.heartbeats == ["i-m3", "i-m3"] and w.fleet.completions == []
    w.h.clock.advance(2600)
    assert w.svc.handle(action, "h1") == RemovalDecision(
        Outcome.RETAINED,
        f"waited 2700s and it is still not safe: {why}",
        "i-m3",
        Role.MANAGER,
        "c",
        ABANDON,
        COMPLETED,
        operator_action=todo("i-m3"),
    )
    assert w.state.removals("demo") == [] and w.fleet.completions == [("i-m3", ABANDON, COMPLETED)]


def test_a_manager_that_cannot_be_made_safe_is_retained_whole() -> None:
    w = World(managers=3, desired=2)
    assert w.svc.handle(w.terminate("i-m3"), "h1") == RemovalDecision(
        Outcome.RETAINED,
        "cannot be made safe: it would leave 2 healthy managers, below MinManagers 3, and no replacement is "
        "coming (the manager group has what it wants)",
        "i-m3",
        Role.MANAGER,
        "c",
        ABANDON,
        COMPLETED,
        operator_action=todo("i-m3"),
    )
    assert w.roles()["i-m3"] is Role.MANAGER


@pytest.mark.parametrize(
    ("failed", "why"),
    [
        ({"state": "stopped"}, "i-m3 counts healthy though its machine is stopped (EC2)"),
        (
            {"healthy": False},
            "i-m3 counts healthy though Auto Scaling marked its machine Unhealthy",
        ),
    ],
    ids=["EC2 stopped it", "Auto Scaling marked it Unhealthy"],
)
def test_a_dead_machine_the_swarm_still_counts_healthy_waits_for_down_and_is_then_removed(
    failed: dict[str, object], why: str
) -> None:
    """Found on the real swarm (tests/swarm/test_faults_swarm.py): a crashed manager's terminate came while
    the swarm still listed its node Ready (heartbeats time out after seconds; an election restarts that
    grace). By that stale count its removal broke a rule and no replacement was due, so it was retained
    (ABANDON: irreversible) though it was dead. It now waits until the swarm marks it Down; its removal is
    then checked as a dead voter's (quorum only) and done."""
    w = World(managers=3, desired=2)  # the group has what it wants: nothing is coming
    w.h.swarm.crash("i-m3")
    w.fleet.by_id["i-m3"] = w.fleet.by_id["i-m3"].model_copy(update=failed)
    action = w.terminate("i-m3")
    started = w.h.clock.now()
    first = w.svc.handle(action, "h1")
    stale = "would leave 2 healthy managers, below MinManagers 3"
    assert first == RemovalDecision(
        Outcome.WAITING,
        f"not safe by the swarm's count: it {stale}; but the count lags: {why} (waiting 0s of 2700s; hook "
        "kept alive)",
        "i-m3",
        Role.MANAGER,
        "c",
    )
    assert w.state.removals("demo") == [(action, started)] and w.fleet.completions == []
    assert w.roles()["i-m3"] is Role.MANAGER
    w.h.clock.advance(30)  # the swarm's down delay has passed: the node shows Down
    report = w.svc.tick("h1")
    assert [(d.instance_id, d.outcome) for d in report.resumed] == [("i-m3", Outcome.REMOVED)]
    assert w.fleet.completions == [("i-m3", CONTINUE, COMPLETED)]
    assert "i-m3" not in w.roles()


def test_a_manager_the_swarm_counts_down_while_its_machine_is_in_service_makes_the_removal_wait() -> None:
    """The other way round (on the real swarm: a new leader's view right after an election, a manager that
    just joined): a retain decided on that count could be wrong, so it waits, pass after pass; once the
    count agrees with the machines, what it says is final. A node EC2 does not list is no evidence either
    way (it is skipped, and the nodes after it are still looked at)."""
    w = World(managers=3, desired=1)  # i-m2 is all the group has besides the victim: nothing is coming
    del w.fleet.by_id["i-m1"]  # a manager node no machine of the group answers for
    w.h.swarm.crash("i-m2")
    w.h.clock.advance(30)  # the swarm counts i-m2 Down; EC2 and Auto Scaling see it running and healthy
    action = w.terminate("i-m3")
    why = (
        "not safe by the swarm's count: it would leave 1 healthy managers, below MinManagers 3; but the "
        "count lags: i-m2 counts not healthy though its machine is in service and healthy"
    )
    first = w.svc.handle(action, "h1")
    assert (first.outcome, first.reason) == (Outcome.WAITING, f"{why} (waiting 0s of 2700s; hook kept alive)")
    w.h.clock.advance(30)
    again = w.svc.tick("h1").resumed
    assert [(d.instance_id, d.outcome, d.reason) for d in again] == [
        ("i-m3", Outcome.WAITING, f"{why} (waiting 30s of 2700s; hook kept alive)")
    ]
    assert w.fleet.completions == []
    w.h.swarm.restart("i-m2")  # back: the count agrees with the machines, and it is still not safe
    report = w.svc.tick("h1")
    assert [(d.instance_id, d.outcome) for d in report.resumed] == [("i-m3", Outcome.RETAINED)]
    assert report.resumed[0].reason == (
        "cannot be made safe: it would leave 2 healthy managers, below MinManagers 3, and no replacement is "
        "coming (the manager group has what it wants)"
    )
    assert w.fleet.completions == [("i-m3", ABANDON, COMPLETED)]


def test_every_manager_whose_count_lags_is_named() -> None:
    w = World(managers=5, desired=4)
    w.svc.config = replace(w.svc.config, min_managers=4)
    w.h.swarm.crash("i-m2")
    w.h.clock.advance(30)  # i-m2: Down in the swarm, in service and healthy for Auto Scaling
    w.h.swarm.crash("i-m3")  # i-m3: stopped by EC2, still Ready in the swarm for its down delay
    w.fleet.by_id["i-m3"] = w.fleet.by_id["i-m3"].model_copy(update={"state": "stopped"})
    decision = w.svc.handle(w.terminate("i-m3"), "h1")
    assert decision.reason == (
        "not safe by the swarm's count: it would leave 3 healthy managers, below MinManagers 4; but the "
        "count lags: i-m2 counts not healthy though its machine is in service and healthy; i-m3 counts "
        "healthy though its machine is stopped (EC2) (waiting 0s of 2700s; hook kept alive)"
    )


def test_a_healthy_machine_the_swarm_counts_healthy_is_still_retained_when_nothing_is_coming() -> None:
    w = World(managers=3, desired=2)
    w.fleet.by_id["i-m3"] = w.fleet.by_id["i-m3"].model_copy(update={"state": "running", "healthy": True})
    assert w.svc.handle(w.terminate("i-m3"), "h1").outcome is Outcome.RETAINED


def test_a_dead_machine_the_swarm_already_counts_down_is_checked_as_a_dead_voter() -> None:
    """Down in the swarm too: no wait for a stale count, the quorum-only rule applies at once."""
    w = World(managers=3, desired=2)
    w.h.swarm.crash("i-m3")
    w.h.clock.advance(30)
    w.fleet.by_id["i-m3"] = w.fleet.by_id["i-m3"].model_copy(update={"state": "stopped", "healthy": False})
    decision = w.svc.handle(w.terminate("i-m3"), "h1")
    assert (decision.outcome, decision.result) == (Outcome.REMOVED, CONTINUE)


def test_a_waiting_removal_whose_action_is_gone_is_dropped() -> None:
    w = World(managers=3, desired=3)
    action = w.terminate("i-m3")
    w.fleet.open_actions.discard("i-m3")  # finished elsewhere (timed out, or completed by hand)
    assert w.svc.handle(action, "h1") == RemovalDecision(
        Outcome.GONE, "lifecycle action already finished", "i-m3", Role.MANAGER
    )
    assert w.state.removals("demo") == []


def test_a_held_lease_makes_the_removal_wait_and_says_who_holds_it() -> None:
    w = World()
    w.state.acquire_lease("demo", "on_terminate:i-m1", 300)
    assert w.svc.handle(w.terminate("i-m4"), "h1") == RemovalDecision(
        Outcome.WAITING,
        "the cluster lease is held by on_terminate:i-m1 (waiting 0s of 2700s; hook kept alive)",
        "i-m4",
        Role.MANAGER,
        "a",
        error="LeaseHeld",
    )


def test_a_lease_that_cannot_be_taken_nor_read_is_another_change() -> None:
    w = World()
    w.state.acquire_lease = lambda cluster, holder, ttl_seconds: False  # type: ignore[method-assign]
    decision = w.svc.handle(w.terminate("i-m4"), "h1")
    assert (
        decision.reason
        == "the cluster lease is held by another change (waiting 0s of 2700s; hook kept alive)"
    )


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (NoLeader, "the swarm has no leader: nothing can change"),
        (Unreachable, "no manager of the swarm answers"),
    ],
)
def test_a_manager_removal_waits_while_the_swarm_cannot_answer(error: type[Exception], why: str) -> None:
    w = World()

    def members() -> list[Member]:
        raise error("down")

    w.h.swarm.members = members  # type: ignore[method-assign]
    assert w.svc.handle(w.terminate("i-m4"), "h1") == RemovalDecision(
        Outcome.WAITING,
        f"{why} (waiting 0s of 2700s; hook kept alive)",
        "i-m4",
        Role.MANAGER,
        "a",
        error=error.__name__,
    )
    assert w.state.leases == {}


@pytest.mark.parametrize(
    ("error", "why", "name"),
    [
        (DemotionWouldLoseQuorum, "the swarm refused the demotion (quorum)", "DemotionWouldLoseQuorum"),
        (NoLeader, "the swarm stopped answering (NoLeader)", "NoLeader"),
        (Unreachable, "the swarm stopped answering (Unreachable)", "Unreachable"),
    ],
)
def test_a_demotion_the_swarm_refuses_makes_the_removal_wait(
    error: type[Exception], why: str, name: str
) -> None:
    w = World()

    def demote(node_id: str) -> None:
        raise error("no")

    w.h.swarm.demote = demote  # type: ignore[method-assign]
    assert w.svc.handle(w.terminate("i-m4"), "h1") == RemovalDecision(
        Outcome.WAITING,
        f"{why} (waiting 0s of 2700s; hook kept alive)",
        "i-m4",
        Role.MANAGER,
        "a",
        error=name,
    )


def test_a_demotion_that_does_not_take_effect_is_retried_later_with_the_hook_kept_alive() -> None:
    w = World()
    w.h.swarm.demote = lambda node_id: None  # type: ignore[method-assign]  # accepted, never effective
    node = w.h.nid("i-m4")
    start = w.h.clock.now()
    decision = w.svc.handle(w.terminate("i-m4"), "h1")
    assert decision == RemovalDecision(
        Outcome.WAITING,
        f"the demotion of {node} has not taken effect after 120s (waiting 0s of 2700s; hook kept alive)",
        "i-m4",
        Role.MANAGER,
        "a",
        error="Retry",
    )
    assert w.h.clock.now() - start == timedelta(seconds=120)
    assert w.fleet.heartbeats == ["i-m4", "i-m4", "i-m4"], "at 60 s, at 120 s, and the wait's own"


# --- which managers are checked, and whether a replacement is coming ----------------------------------


def test_a_manager_group_instance_that_never_joined_is_continued_as_no_member() -> None:
    w = World()
    w.fleet.by_id["i-m9"] = InstanceInfo(instance_id="i-m9", az="b", group="demo-manager")
    assert w.svc.handle(w.terminate("i-m9"), "h1") == RemovalDecision(
        Outcome.NOT_MEMBER, "not a swarm member", "i-m9", Role.MANAGER, "b", CONTINUE, COMPLETED
    )
    assert w.fleet.completions == [("i-m9", CONTINUE, COMPLETED)] and w.state.leases == {}


def shown_as(w: World, iid: str, **fields: object) -> None:
    """The orchestrator shows this node with other fields (a demotion under way, say)."""
    real = w.h.swarm.members

    def members() -> list[Member]:
        return [replace(m, **fields) if m.instance_id == iid else m for m in real()]  # type: ignore[arg-type]

    w.h.swarm.members = members  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "fields",
    [{"in_raft": False}, {"role": Role.WORKER, "in_raft": True}],
    ids=["manager-out-of-raft", "demoting"],
)
def test_a_manager_is_checked_whether_it_shows_as_manager_or_still_votes(fields: dict[str, object]) -> None:
    w = World(managers=3, desired=2)
    shown_as(w, "i-m3", **fields)
    decision = w.svc.handle(w.terminate("i-m3"), "h1")
    assert (decision.outcome, decision.reason) == (
        Outcome.RETAINED,
        "cannot be made safe: it would leave 2 healthy managers, below MinManagers 3, and no replacement is "
        "coming (the manager group has what it wants)",
    )


def test_a_gone_instance_still_listed_in_the_group_is_no_replacement() -> None:
    w = World(managers=3, desired=3)
    w.fleet.by_id["i-old"] = InstanceInfo(
        instance_id="i-old", az="a", group="demo-manager", lifecycle_state="InService", state="terminated"
    )
    assert w.svc.handle(w.terminate("i-m3"), "h1").outcome is Outcome.WAITING, "2 live of the 3 desired"


def test_a_launch_under_way_is_a_replacement_even_when_the_group_has_its_desired() -> None:
    w = World(managers=3, desired=3)
    w.fleet.by_id["i-new"] = InstanceInfo(
        instance_id="i-new", az="c", group="demo-manager", lifecycle_state="Pending:Wait"
    )
    decision = w.svc.handle(w.terminate("i-m3"), "h1")
    assert (decision.outcome, decision.reason) == (
        Outcome.WAITING,
        "not safe yet: it would leave 2 healthy managers, below MinManagers 3; a replacement is coming "
        "(waiting 0s of 2700s; hook kept alive)",
    )


def test_without_the_configured_manager_group_no_replacement_is_expected() -> None:
    w = World(managers=3, desired=3)
    w.svc.config = replace(w.svc.config, manager_group="renamed")
    assert w.svc.handle(w.terminate("i-m3"), "h1").outcome is Outcome.RETAINED


def test_a_removal_reports_the_waiting_ones_it_worked_on_the_way() -> None:
    w = World(desired=3)
    w.state.acquire_lease("demo", "busy", 300)
    assert w.svc.handle(w.terminate("i-m4"), "h1").outcome is Outcome.WAITING
    w.state.release_lease("demo", "busy")
    decision = w.svc.handle(w.terminate("i-m5"), "h2")
    assert (decision.instance_id, decision.outcome) == ("i-m5", Outcome.REMOVED)
    assert [(d.instance_id, d.outcome, d.also) for d in decision.also] == [("i-m4", Outcome.REMOVED, ())]


# --- the slow steps: drain, demotion, rm --------------------------------------------------------------


def beats_at(w: World) -> list[float]:
    """Seconds since now at which the hook's heartbeats are sent."""
    start = w.h.clock.now()
    out: list[float] = []
    real = w.fleet.heartbeat

    def heartbeat(action: LifecycleAction) -> bool:
        out.append((w.h.clock.now() - start).total_seconds())
        return real(action)

    w.fleet.heartbeat = heartbeat  # type: ignore[method-assign]
    return out


def test_a_drain_polls_until_the_nodes_tasks_are_gone_with_heartbeats_on_time() -> None:
    w = World(workers=1)
    w.svc.config = replace(w.svc.config, poll_interval=1.0, heartbeat_every=30.0)
    node = w.h.nid("i-w1")
    asked: list[str] = []

    def running_tasks(node_id: str) -> int:
        asked.append(node_id)
        return 1 if len(asked) <= 65 else 0  # one task that takes 65 s to move

    w.h.swarm.running_tasks = running_tasks  # type: ignore[method-assign]
    beats = beats_at(w)
    start = w.h.clock.now()
    decision = w.svc.handle(w.terminate("i-w1"), "h")
    assert decision.reason == "drained, left and removed"
    assert set(asked) == {node} and len(asked) == 66
    assert beats == [30.0, 60.0]
    assert (w.h.clock.now() - start).total_seconds() == 65 + 10, (
        "65 s of drain, then rm once the node is Down"
    )


def test_a_drain_gives_up_exactly_at_its_timeout() -> None:
    w = World(workers=1)
    w.svc.config = replace(w.svc.config, poll_interval=1.0, drain_timeout=10.0, heartbeat_every=4.0)
    w.h.swarm.running_tasks = lambda node_id: 3  # type: ignore[method-assign]
    beats = beats_at(w)
    start = w.h.clock.now()
    decision = w.svc.handle(w.terminate("i-w1"), "h")
    assert decision.reason == "drain timed out; left and removed"
    assert beats == [4.0, 8.0]
    assert (w.h.clock.now() - start).total_seconds() == 10 + 10, (
        "10 s of drain, then rm once the node is Down"
    )


def test_a_demotion_is_awaited_until_the_node_has_left_raft_with_heartbeats_on_time() -> None:
    w = World()
    w.svc.config = replace(w.svc.config, poll_interval=1.0, heartbeat_every=30.0)
    node = w.h.nid("i-m4")
    polls = {"n": 0}
    real = w.h.swarm.members

    def members() -> list[Member]:
        rows = list(real())
        if any(m.node_id == node and m.role is Role.WORKER for m in rows):
            polls["n"] += 1
            if polls["n"] <= 75:  # demoted, but Raft lets it go only after 75 s
                return [replace(m, in_raft=True) if m.node_id == node else m for m in rows]
        return rows

    w.h.swarm.members = members  # type: ignore[method-assign]
    beats = beats_at(w)
    decision = w.svc.handle(w.terminate("i-m4"), "h1")
    assert decision.steps == ("drain", "demote", "demotion-effective", "leave", "rm")
    assert beats == [30.0, 60.0], "a heartbeat every 30 s while Raft lets the node go"
    assert polls["n"] == 76


def test_a_node_that_left_the_list_while_its_demotion_was_awaited_is_done_with() -> None:
    w = World()
    node = w.h.nid("i-m4")
    real_demote, real_members = w.h.swarm.demote, w.h.swarm.members
    gone: list[str] = []

    def demote(node_id: str) -> None:
        real_demote(node_id)
        gone.append(node_id)  # someone else removes it right after

    w.h.swarm.demote = demote  # type: ignore[method-assign]
    w.h.swarm.members = lambda: [m for m in real_members() if m.node_id not in gone]  # type: ignore[method-assign]
    decision = w.svc.handle(w.terminate("i-m4"), "h1")
    assert decision.outcome is Outcome.REMOVED and gone == [node]
    assert decision.steps == ("drain", "demote", "demotion-effective", "leave", "rm")


def test_the_worker_that_cannot_be_drained_for_want_of_a_leader_still_leaves() -> None:
    w = World(workers=1)
    w.h.swarm.members = lambda: (_ for _ in ()).throw(NoLeader("down"))  # type: ignore[method-assign]
    w.svc.handle(w.terminate("i-w1"), "h")
    assert not w.h.swarm.in_swarm("i-w1")


def test_an_instance_without_a_lifecycle_state_counts_as_live_capacity() -> None:
    """The group has what it wants (2) without the one leaving: one of them shows no lifecycle state."""
    w = World(managers=3, desired=2)
    w.fleet.by_id["i-m1"] = w.fleet.by_id["i-m1"].model_copy(update={"lifecycle_state": None})
    assert w.svc.handle(w.terminate("i-m3"), "h1").outcome is Outcome.RETAINED


def test_a_redelivered_event_of_a_waiting_removal_works_the_whole_queue_and_keeps_its_start() -> None:
    w = World(desired=3)
    w.state.acquire_lease("demo", "busy", 300)
    first, second = w.terminate("i-m4"), w.terminate("i-m5")
    assert w.svc.handle(first, "h1").outcome is Outcome.WAITING
    w.h.clock.advance(10)
    assert w.svc.handle(second, "h2").outcome is Outcome.WAITING
    w.h.clock.advance(10)
    decision = w.svc.handle(first, "h1")  # the same event again, while the lease is still held
    assert decision.reason == "the cluster lease is held by busy (waiting 20s of 2700s; hook kept alive)"
    w.state.release_lease("demo", "busy")
    decision = w.svc.handle(first, "h1")
    assert (decision.instance_id, decision.outcome) == ("i-m4", Outcome.REMOVED)
    assert [(d.instance_id, d.outcome) for d in decision.also] == [("i-m5", Outcome.REMOVED)]
