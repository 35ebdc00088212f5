"""LaunchService's join-path edges that a mutation audit found untested (issue 15): each test here fails
with the named mutant applied (scripts/named_mutants.py applies them one by one)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from tests.unit.services.launch_world import ZONES, World, make_world, members_hiding, members_seen_as

from autojoin.domain.model import LifecycleAction, LifecycleKind, LifecycleResult, Role
from autojoin.errors import AlreadyInSwarm, CommandFailed, JoinDeferred, NodeNotReady, Unreachable
from autojoin.ports import CompletionOutcome, Member
from autojoin.services.launch import Outcome


@pytest.fixture
def world() -> World:
    return make_world()


def _cluster(world: World, managers: int = 1, workers: int = 0) -> list[str]:
    ids = []
    for i in range(managers):
        action = world.launch(Role.MANAGER, ZONES[i % 3])
        assert world.service.handle(action).result is LifecycleResult.CONTINUE
        ids.append(action.instance_id)
    for i in range(workers):
        action = world.launch(Role.WORKER, ZONES[i % 3])
        assert world.service.handle(action).outcome is Outcome.JOINED
        ids.append(action.instance_id)
    return ids


# --- which groups are ours ------------------------------------------------------------------------------


def test_a_group_of_another_cluster_is_ignored_even_when_it_carries_a_role(world: World) -> None:
    _cluster(world)
    world.fleet.add_group("theirs", "other-cluster", Role.WORKER, ZONES)
    action = world.launch(Role.WORKER, "us-east-1a", group="theirs")
    d = world.service.handle(action)
    assert d.outcome is Outcome.IGNORED and "not a group of cluster demo" in d.reason
    assert action.instance_id not in {iid for iid, _ in world.handoff.offered}  # no token handed out
    assert action.instance_id not in {iid for iid, *_ in world.fleet.completions}
    assert len(world.swarm.members()) == 1


def test_a_group_of_this_cluster_without_a_role_is_ignored(world: World) -> None:
    _cluster(world)
    world.fleet.add_group("untagged", "demo", None, ZONES)
    action = world.launch(Role.WORKER, "us-east-1a", group="untagged")
    assert world.service.handle(action).outcome is Outcome.IGNORED
    assert action.instance_id not in {iid for iid, _ in world.handoff.offered}


# --- readiness after the join ---------------------------------------------------------------------------


def test_a_node_that_never_shows_ready_is_abandoned_after_the_join_wait(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cluster(world)
    action = world.launch(Role.WORKER, "us-east-1b")
    new = lambda: {n for n in [world.swarm.node_id_of(action.instance_id)] if n}  # noqa: E731
    monkeypatch.setattr(world.swarm, "members", members_seen_as(world.swarm.members, new, ready=False))
    t0 = world.clock.now()
    d = world.service.handle(action)
    assert (d.outcome, d.result, d.error) == (Outcome.ABANDONED, LifecycleResult.ABANDON, "_NotReady")
    assert d.reason == "join failed: _NotReady"
    assert (d.instance_id, d.role, d.az, d.completion) == (
        action.instance_id,
        Role.WORKER,
        "us-east-1b",
        CompletionOutcome.COMPLETED,
    )
    assert world.clock.now() - t0 == timedelta(seconds=60)  # join_wait, polled every 2 s, no more
    assert world.fleet.completions[-1] == (
        action.instance_id,
        LifecycleResult.ABANDON,
        CompletionOutcome.COMPLETED,
    )
    assert world.state.pending("demo") == []


def test_the_join_wait_is_counted_in_whole_polls_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world(join_wait=5, poll_interval=2)
    _cluster(world)
    action = world.launch(Role.WORKER, "us-east-1b")
    new = lambda: {n for n in [world.swarm.node_id_of(action.instance_id)] if n}  # noqa: E731
    monkeypatch.setattr(world.swarm, "members", members_seen_as(world.swarm.members, new, ready=False))
    t0 = world.clock.now()
    assert world.service.handle(action).outcome is Outcome.ABANDONED
    assert world.clock.now() - t0 == timedelta(seconds=6)  # polls at 0, 2, 4; 6 >= 5 ends it


def test_a_node_the_orchestrator_does_not_list_yet_is_polled_for(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cluster(world)
    action = world.launch(Role.WORKER, "us-east-1b")
    t0 = world.clock.now()
    early = lambda: (  # noqa: E731
        {n for n in [world.swarm.node_id_of(action.instance_id)] if n}
        if world.clock.now() - t0 < timedelta(seconds=3)
        else set()
    )
    monkeypatch.setattr(world.swarm, "members", members_hiding(world.swarm.members, early))
    d = world.service.handle(action)
    assert (d.outcome, d.result) == (Outcome.JOINED, LifecycleResult.CONTINUE)
    assert world.clock.now() - t0 == timedelta(seconds=4)


def test_a_node_that_shows_ready_with_the_wrong_role_is_abandoned(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cluster(world)
    action = world.launch(Role.MANAGER, "us-east-1b")
    new = lambda: {n for n in [world.swarm.node_id_of(action.instance_id)] if n}  # noqa: E731
    monkeypatch.setattr(world.swarm, "members", members_seen_as(world.swarm.members, new, role=Role.WORKER))
    d = world.service.handle(action)
    assert (d.outcome, d.error) == (Outcome.ABANDONED, "_NotReady")


def test_a_node_that_shows_ready_after_a_few_polls_joins_without_waiting_longer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cluster(world)
    action = world.launch(Role.WORKER, "us-east-1b")
    t0 = world.clock.now()
    early = lambda: (  # noqa: E731
        {n for n in [world.swarm.node_id_of(action.instance_id)] if n}
        if world.clock.now() - t0 < timedelta(seconds=5)
        else set()
    )
    monkeypatch.setattr(world.swarm, "members", members_seen_as(world.swarm.members, early, ready=False))
    d = world.service.handle(action)
    assert (d.outcome, d.result) == (Outcome.JOINED, LifecycleResult.CONTINUE)
    assert world.clock.now() - t0 == timedelta(seconds=6)  # polls at 0, 2, 4 (not ready) and 6 (ready)


# --- the hand-off slot is cleared whatever happens -------------------------------------------------------


def test_a_ticket_the_node_never_took_is_withdrawn_after_a_failed_join(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cluster(world)

    def broken(instance_id: str, role: Role) -> str:
        raise CommandFailed("docker is not running")  # fails before the node reads its slot

    monkeypatch.setattr(world.swarm, "join", broken)
    action = world.launch(Role.WORKER, "us-east-1b")
    d = world.service.handle(action)
    assert (d.outcome, d.result, d.error) == (Outcome.ABANDONED, LifecycleResult.ABANDON, "CommandFailed")
    assert world.handoff.offered[-1] == (action.instance_id, Role.WORKER)  # it was offered ...
    assert world.handoff.slots == {}  # ... and withdrawn


def test_a_ticket_the_node_never_took_is_withdrawn_when_the_node_is_still_booting(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cluster(world)

    def booting(instance_id: str, role: Role) -> str:
        raise NodeNotReady("SSM does not know the instance yet")

    monkeypatch.setattr(world.swarm, "join", booting)
    action = world.launch(Role.WORKER, "us-east-1b")
    with pytest.raises(Exception, match="cannot run commands yet"):
        world.service.handle(action)
    assert world.handoff.slots == {}


# --- the saved snapshot ----------------------------------------------------------------------------------


def test_the_snapshot_holds_the_manager_groups_zones_only() -> None:
    world = make_world(worker_zones=("us-east-1a", "us-east-1d"))
    world.fleet.add_group("their-mgr", "other-cluster", Role.MANAGER, ("us-east-1z",))
    _cluster(world, managers=1, workers=1)
    view = world.state.snapshot("demo")
    assert view is not None
    assert view.zones == ZONES  # sorted, every manager AZ even without a manager, no worker-only AZ
    assert view.taken_at == world.clock.now()


def test_the_snapshot_records_each_nodes_health_reachability_and_labels(world: World) -> None:
    ids = _cluster(world, managers=3, workers=2)
    mgr_down, wrk_down = ids[2], ids[4]
    world.swarm.crash(mgr_down)
    world.swarm.crash(wrk_down)
    world.clock.advance(60)  # past the swarm's down delay
    _cluster(world, managers=0, workers=1)  # a join saves a fresh snapshot
    view = world.state.snapshot("demo")
    assert view is not None
    by_id = {n.instance_id: n for n in view.nodes}
    assert set(by_id) == {*ids, f"i-{world.n:017x}"}
    assert {i for i, n in by_id.items() if not n.healthy} == {mgr_down, wrk_down}
    assert {i for i, n in by_id.items() if not n.reachable} == {mgr_down}  # workers are always reachable
    assert all(n.available for n in view.nodes)
    assert [i for i, n in by_id.items() if n.leader] == [ids[0]]
    first = by_id[ids[0]]
    info = world.fleet.by_id[ids[0]]
    assert (first.role, first.az, first.group, first.instance_type, first.address) == (
        Role.MANAGER,
        info.az,
        "mgr",
        "t3.small",
        info.private_ip,
    )
    assert first.node_id == world.swarm.node_id_of(ids[0])
    assert by_id[ids[3]].role is Role.WORKER and by_id[ids[3]].group == "wrk"
    assert view.manager_layout() == {"us-east-1a": 1, "us-east-1b": 1, "us-east-1c": 0}


# --- pending launches whose instance or group has gone ----------------------------------------------------


def test_a_pending_launch_whose_instance_has_gone_is_dropped_when_the_cluster_appears(world: World) -> None:
    worker = world.launch(Role.WORKER, "us-east-1c")
    assert world.service.handle(worker).outcome is Outcome.PENDING
    world.gone(worker.instance_id)
    boot = world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    assert boot.outcome is Outcome.BOOTSTRAPPED
    assert boot.also_joined == ()
    assert world.state.pending("demo") == []
    assert worker.instance_id not in {iid for iid, _ in world.handoff.offered}


def test_a_pending_launch_whose_instance_is_unknown_or_group_deleted_is_dropped(world: World) -> None:
    unknown = world.launch(Role.WORKER, "us-east-1c")
    orphan = world.launch(Role.WORKER, "us-east-1b", group="wrk2")
    world.fleet.add_group("wrk2", "demo", Role.WORKER, ZONES)
    assert world.service.handle(unknown).outcome is Outcome.PENDING
    assert world.service.handle(orphan).outcome is Outcome.PENDING
    del world.fleet.by_id[unknown.instance_id]
    del world.fleet.groups["wrk2"]
    boot = world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    assert (boot.outcome, boot.also_joined) == (Outcome.BOOTSTRAPPED, ())
    assert world.state.pending("demo") == []


# --- a node still booting whose lifecycle action has already ended ------------------------------------------


def test_a_booting_node_whose_hook_already_ended_is_gone_not_deferred(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cluster(world)

    def booting(instance_id: str, role: Role) -> str:
        raise NodeNotReady("SSM does not know the instance yet")

    monkeypatch.setattr(world.swarm, "join", booting)
    action = world.launch(Role.WORKER, "us-east-1b")
    world.fleet.open_actions.discard(action.instance_id)  # the hook timed out meanwhile
    d = world.service.handle(action)  # no JoinDeferred: nothing to retry
    assert (d.outcome, d.result) == (Outcome.GONE, None)
    assert world.state.pending("demo") == []


def test_a_booting_first_manager_whose_hook_already_ended_gives_up_its_claim(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def booting(instance_id: str, address: str) -> str:
        raise NodeNotReady("SSM does not know the instance yet")

    monkeypatch.setattr(world.swarm, "init", booting)
    first = world.launch(Role.MANAGER, "us-east-1a")
    world.fleet.open_actions.discard(first.instance_id)
    d = world.service.handle(first)
    assert d.outcome is Outcome.GONE
    assert world.state.bootstrap_owner("demo") is None  # the next manager can claim it at once
    assert world.state.pending("demo") == []
    monkeypatch.undo()
    assert world.service.handle(world.launch(Role.MANAGER, "us-east-1b")).outcome is Outcome.BOOTSTRAPPED


# --- what each decision says (operators read these reasons in the logs) ---------------------------------


def test_each_path_gives_its_reason(world: World) -> None:
    handle = world.service.handle
    test = LifecycleAction(kind=LifecycleKind.TEST, group="mgr")
    assert handle(test).reason == "test notification: nothing to complete"
    term = LifecycleAction(kind=LifecycleKind.TERMINATING, group="mgr", instance_id="i-1", hook="h")
    assert (handle(term).reason, handle(term).instance_id) == ("not a launch lifecycle action", "i-1")
    ended = world.launch(Role.WORKER, "us-east-1b")
    world.fleet.open_actions.discard(ended.instance_id)  # its hook timed out before the cluster existed
    gone_already = handle(ended)
    assert (gone_already.outcome, gone_already.reason) == (Outcome.GONE, "lifecycle action already finished")
    assert (gone_already.instance_id, gone_already.role) == (ended.instance_id, Role.WORKER)
    early = world.launch(Role.WORKER, "us-east-1a")
    waiting = handle(early)
    assert (waiting.reason, waiting.az) == (
        "the cluster has no manager yet: waiting (hook kept alive)",
        "us-east-1a",
    )
    assert (waiting.role, waiting.instance_id) == (Role.WORKER, early.instance_id)
    boot = handle(world.launch(Role.MANAGER, "us-east-1a"))
    assert boot.reason == "first manager: initialised the cluster"
    assert [d.reason for d in boot.also_joined] == ["joined as worker"]
    # a retry that finds it joined while its launch is still in Pending:Wait (the completion not yet seen)
    world.fleet.by_id[early.instance_id] = world.fleet.by_id[early.instance_id].model_copy(
        update={"lifecycle_state": "Pending:Wait"}
    )
    assert handle(early).reason == "already a member with the right role"
    warm = world.launch(Role.WORKER, "us-east-1b").model_copy(update={"destination": "WarmPool"})
    assert handle(warm).reason == "launch into the warm pool is not a join"
    gone = world.launch(Role.WORKER, "us-east-1b")
    world.gone(gone.instance_id)
    assert handle(gone).reason == "instance is gone: nothing to do"


def test_cluster_trouble_gives_its_reasons(world: World) -> None:
    ids = _cluster(world, managers=3)
    world.swarm.crash(ids[0])
    world.swarm.crash(ids[1])
    world.clock.advance(60)
    no_leader = world.service.handle(world.launch(Role.WORKER, "us-east-1c"))
    assert no_leader.reason == "the cluster has no leader (quorum lost): waiting (hook kept alive)"
    world.swarm.crash(ids[2])
    nobody = world.service.handle(world.launch(Role.WORKER, "us-east-1c"))
    assert nobody.reason == "no manager of the cluster answers: waiting (hook kept alive)"


def test_a_missing_token_names_the_role(world: World) -> None:
    _cluster(world)
    del world.vault.current[Role.WORKER]
    assert (
        world.service.handle(world.launch(Role.WORKER, "us-east-1b")).reason == "no worker token in the vault"
    )


def test_a_failed_init_says_so(world: World) -> None:
    action = world.launch(Role.MANAGER, "us-east-1a")
    world.swarm.crash(action.instance_id)
    assert world.service.handle(action).reason == "cluster init failed: Unreachable"


def test_a_deferred_pending_launch_says_why(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = world.launch(Role.WORKER, "us-east-1c")
    world.service.handle(worker)
    real_join = world.swarm.join

    def join(instance_id: str, role: Role) -> str:
        if instance_id == worker.instance_id:
            raise NodeNotReady("booting")
        return real_join(instance_id, role)

    monkeypatch.setattr(world.swarm, "join", join)
    boot = world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    (deferred,) = boot.also_joined
    assert (deferred.reason, deferred.role, deferred.az) == (
        f"{worker.instance_id} cannot run commands yet; its launch stays pending",
        Role.WORKER,
        "us-east-1c",
    )


def test_the_decision_dict_carries_every_field(world: World) -> None:
    worker = world.launch(Role.WORKER, "us-east-1c")
    world.service.handle(worker)
    boot = world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    node = world.swarm.node_id_of(boot.instance_id)
    worker_node = world.swarm.node_id_of(worker.instance_id)
    assert boot.to_dict() == {
        "outcome": "bootstrapped",
        "reason": "first manager: initialised the cluster",
        "instance_id": boot.instance_id,
        "role": "manager",
        "az": "us-east-1a",
        "result": "CONTINUE",
        "completion": "completed",
        "node_id": node,
        "error": None,
        "also_joined": [
            {
                "outcome": "joined",
                "reason": "joined as worker",
                "instance_id": worker.instance_id,
                "role": "worker",
                "az": "us-east-1c",
                "result": "CONTINUE",
                "completion": "completed",
                "node_id": worker_node,
                "error": None,
                "also_joined": [],
            }
        ],
    }
    pending = world.service.handle(world.launch(Role.WORKER, "us-east-1b").model_copy(update={"group": "x"}))
    assert pending.to_dict()["role"] is None and pending.to_dict()["result"] is None


def test_a_manager_that_waited_and_then_fails_to_bootstrap_leaves_no_pending_record(world: World) -> None:
    holder = world.launch(Role.MANAGER, "us-east-1a")
    assert world.state.claim_bootstrap("demo", holder.instance_id)  # its handler is still running
    second = world.launch(Role.MANAGER, "us-east-1b")
    assert world.service.handle(second).outcome is Outcome.PENDING
    assert [a.instance_id for a, _ in world.state.pending("demo")] == [second.instance_id]
    world.gone(holder.instance_id)  # the claim's owner died: the retry takes the claim over ...
    world.swarm.crash(second.instance_id)  # ... but cannot init
    d = world.service.handle(second)
    assert (d.outcome, d.instance_id, d.error) == (Outcome.ABANDONED, second.instance_id, "Unreachable")
    assert world.state.pending("demo") == []
    assert world.state.bootstrap_owner("demo") is None


def test_the_snapshot_reads_members_the_orchestrator_has_not_tied_to_an_instance(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cluster(world)
    real = world.swarm.members
    labelled_only = Member(
        node_id="n-labelled",
        hostname="host-1",
        role=Role.WORKER,
        ready=True,
        available=False,
        reachable=True,
        labels={
            "instance-id": "i-0000000000000beef",
            "az": "us-east-1c",
            "asg": "wrk",
            "instance-type": "m5",
        },
    )
    bare = Member(
        node_id="n-bare", hostname="host-2", role=Role.WORKER, ready=False, available=True, reachable=True
    )
    monkeypatch.setattr(world.swarm, "members", lambda: [*real(), labelled_only, bare])
    _cluster(world, managers=0, workers=1)
    view = world.state.snapshot("demo")
    assert view is not None
    by_id = {n.instance_id: n for n in view.nodes}
    seen = by_id["i-0000000000000beef"]  # no instance id of its own: the label's
    assert (seen.az, seen.group, seen.instance_type, seen.node_id, seen.available, seen.healthy) == (
        "us-east-1c",
        "wrk",
        "m5",
        "n-labelled",
        False,
        True,
    )
    unknown = by_id["host-2"]  # neither: its hostname
    assert (unknown.az, unknown.group, unknown.instance_type, unknown.healthy) == ("unknown", "", None, False)


def test_a_snapshot_the_orchestrator_cannot_give_is_skipped_and_the_join_still_counts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cluster(world)
    before = world.state.snapshot("demo")
    real = world.swarm.members
    calls = {"n": 0}

    def members_then_unreachable() -> Sequence[Member]:
        calls["n"] += 1
        if calls["n"] >= 3:  # members before the join, readiness, then the snapshot's read fails
            raise Unreachable("no manager answers")
        return real()

    monkeypatch.setattr(world.swarm, "members", members_then_unreachable)
    d = world.service.handle(world.launch(Role.WORKER, "us-east-1b"))
    assert (d.outcome, d.result) == (Outcome.JOINED, LifecycleResult.CONTINUE)
    assert world.state.snapshot("demo") == before


def test_deferred_launches_say_which_instance_waits(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def init_booting(instance_id: str, address: str) -> str:
        raise NodeNotReady("SSM does not know the instance yet")

    monkeypatch.setattr(world.swarm, "init", init_booting)
    first = world.launch(Role.MANAGER, "us-east-1a")
    with pytest.raises(JoinDeferred) as caught:
        world.service.handle(first)
    assert str(caught.value) == f"{first.instance_id} cannot run commands yet; the bootstrap waits"
    monkeypatch.undo()
    world.service.handle(first)

    def join_booting(instance_id: str, role: Role) -> str:
        raise NodeNotReady("SSM does not know the instance yet")

    monkeypatch.setattr(world.swarm, "join", join_booting)
    worker = world.launch(Role.WORKER, "us-east-1b")
    with pytest.raises(JoinDeferred) as caught:
        world.service.handle(worker)
    assert str(caught.value) == f"{worker.instance_id} cannot run commands yet; its launch stays pending"


# --- a join whose handler lost the cluster, or died, after the node joined (issue 13) --------------------


def test_the_cluster_stops_answering_after_the_node_joined_keeps_the_launch_pending(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node joined; then no manager answers the Ready wait (the leader died, the others time out): the
    cluster is at fault, not the instance (docs/architecture.md): pending with a heartbeat, never ABANDON;
    the next try finds the node in the swarm unlabelled, asks it which node it is, labels it, CONTINUE."""
    _cluster(world)
    real = world.swarm.members
    calls = {"n": 0}

    def unreachable_after_the_join() -> Sequence[Member]:
        calls["n"] += 1
        if calls["n"] >= 2:  # members before the join answer; the Ready wait's read does not
            raise Unreachable("no manager answers")
        return real()

    monkeypatch.setattr(world.swarm, "members", unreachable_after_the_join)
    action = world.launch(Role.WORKER, "us-east-1b")
    d = world.service.handle(action)
    assert (d.outcome, d.result, d.error) == (Outcome.PENDING, None, "Unreachable")
    assert action.instance_id not in {iid for iid, *_ in world.fleet.completions}
    assert [a.instance_id for a, _ in world.state.pending("demo")] == [action.instance_id]
    monkeypatch.setattr(world.swarm, "members", real)
    (done,) = world.service.finish_pending()
    assert (done.outcome, done.result) == (Outcome.ALREADY_MEMBER, LifecycleResult.CONTINUE), done
    assert done.node_id == world.swarm.node_id_of(action.instance_id)
    member = next(m for m in real() if m.node_id == done.node_id)
    assert member.labels["instance-id"] == action.instance_id
    assert len([m for m in real() if m.role is Role.WORKER]) == 1  # the same node, not a second one


def test_a_retry_after_the_handler_died_between_join_and_label_takes_the_unlabelled_node(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function died after the node joined and before it labelled it (a Lambda timeout): the retry's
    ticket meets 'already part of a swarm'; the node's daemon says which node it is, an unlabelled worker:
    labelled, CONTINUE (before: ABANDON, and the node stayed in the swarm unlabelled)."""
    _cluster(world)
    action = world.launch(Role.WORKER, "us-east-1b")
    real_label = world.swarm.label

    class Died(BaseException):
        pass

    def die(node_id: str, labels: dict[str, str]) -> None:
        raise Died

    monkeypatch.setattr(world.swarm, "label", die)
    with pytest.raises(Died):
        world.service.handle(action)
    monkeypatch.setattr(world.swarm, "label", real_label)
    d = world.service.handle(action)  # Lambda's retry
    assert (d.outcome, d.result) == (Outcome.ALREADY_MEMBER, LifecycleResult.CONTINUE), d
    assert [m.labels.get("instance-id") for m in world.swarm.members() if m.role is Role.WORKER] == [
        action.instance_id
    ]


def test_an_instance_already_in_the_swarm_as_another_s_node_or_role_is_not_taken(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'Already part of a swarm' and the daemon names a node labelled for another instance, a node of
    another role, or none: AlreadyInSwarm, ABANDON as before."""
    _cluster(world, managers=1, workers=1)
    labelled = next(m for m in world.swarm.members() if m.role is Role.WORKER)
    manager = next(m for m in world.swarm.members() if m.role is Role.MANAGER)
    for claimed in (labelled.node_id, manager.node_id, None):
        action = world.launch(Role.WORKER, "us-east-1c")
        monkeypatch.setattr(world.swarm, "join", lambda *_a, **_k: (_ for _ in ()).throw(AlreadyInSwarm("x")))
        monkeypatch.setattr(world.swarm, "joined_node", lambda _iid, c=claimed: c)
        d = world.service.handle(action)
        assert (d.outcome, d.result, d.error) == (
            Outcome.ABANDONED,
            LifecycleResult.ABANDON,
            "AlreadyInSwarm",
        )
