"""LaunchService: whole decisions on the paths the full mutation sweep of services/launch.py found
unasserted (issue 15) — the join order's count of the managers, the nodes a retry or a lying node may
take, the pending launches a reconciler's pass may start."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from tests.unit.services.launch_world import ZONES, World, make_world, members_seen_as

from autojoin.domain.model import LifecycleResult, Role
from autojoin.errors import AlreadyInSwarm, JoinDeferred, NodeNotReady, NoLeader, Unreachable
from autojoin.ports import CompletionOutcome, JoinTicket, Member
from autojoin.services.launch import PENDING_WAIT, LaunchDecision, Outcome

A, B, C = ZONES


@pytest.fixture
def world() -> World:
    return make_world()


def _managers(world: World, *zones: str) -> list[str]:
    ids = []
    for az in zones:
        action = world.launch(Role.MANAGER, az)
        assert world.service.handle(action).result is LifecycleResult.CONTINUE
        ids.append(action.instance_id)
    return ids


def _waits(iid: str, az: str, first: str, how: str, first_az: str) -> LaunchDecision:
    return LaunchDecision(
        Outcome.PENDING,
        f"a manager in {az} now would leave the managers surviving fewer AZ losses; {first} {how} in "
        f"{first_az} goes first: waiting (hook kept alive)",
        iid,
        Role.MANAGER,
        az,
        error="JoinOrder",
    )


def _joined(world: World, iid: str, role: Role, az: str, how: str | None = None) -> LaunchDecision:
    return LaunchDecision(
        Outcome.JOINED,
        how or f"joined as {role.value}",
        iid,
        role,
        az,
        LifecycleResult.CONTINUE,
        CompletionOutcome.COMPLETED,
        world.swarm.node_id_of(iid),
    )


# --- the reconciler's pass: no join without a whole budget -------------------------------------------------


def test_the_reconcilers_pass_starts_a_pending_join_only_with_a_whole_budget_left(world: World) -> None:
    _managers(world, A)
    worker = world.launch(Role.WORKER, B)
    world.state.add_pending("demo", worker, Role.WORKER)  # a launch a lost event left behind
    budget = world.service.config.join_budget
    assert world.service.finish_pending(time_left=lambda: budget - 0.5) == (
        LaunchDecision(Outcome.PENDING, "not enough time left in this invocation", worker.instance_id),
    )
    assert [a.instance_id for a, _r in world.state.pending("demo")] == [worker.instance_id]
    assert worker.instance_id not in {iid for iid, _r in world.handoff.offered}
    (done,) = world.service.finish_pending(time_left=lambda: budget)  # exactly a budget: enough
    assert done == _joined(world, worker.instance_id, Role.WORKER, B)
    assert world.state.pending("demo") == []


# --- a retry that meets "already part of a swarm" ---------------------------------------------------------


def test_a_node_id_the_daemon_names_that_no_member_has_is_not_taken(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _managers(world, A)
    action = world.launch(Role.WORKER, C)
    monkeypatch.setattr(world.swarm, "join", lambda *_a: (_ for _ in ()).throw(AlreadyInSwarm("x")))
    monkeypatch.setattr(world.swarm, "joined_node", lambda _iid: "node-of-another-swarm")
    d = world.service.handle(action)
    assert d == LaunchDecision(
        Outcome.ABANDONED,
        "join failed: AlreadyInSwarm",
        action.instance_id,
        Role.WORKER,
        C,
        LifecycleResult.ABANDON,
        CompletionOutcome.COMPLETED,
        error="AlreadyInSwarm",
    )


def test_a_node_known_only_by_its_instance_label_is_not_taken_for_another_instance(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orchestrator may report no instance id of its own (only the label says whose node it is): a
    retry whose daemon names a node labelled for another instance still does not take it."""
    _managers(world, A)
    other = world.launch(Role.WORKER, B)
    assert world.service.handle(other).outcome is Outcome.JOINED
    other_node = world.swarm.node_id_of(other.instance_id)
    real = world.swarm.members
    monkeypatch.setattr(
        world.swarm, "members", members_seen_as(real, lambda: _all_of(real), instance_id=None)
    )
    action = world.launch(Role.WORKER, C)
    monkeypatch.setattr(world.swarm, "join", lambda *_a: (_ for _ in ()).throw(AlreadyInSwarm("x")))
    monkeypatch.setattr(world.swarm, "joined_node", lambda _iid: other_node)
    d = world.service.handle(action)
    assert (d.outcome, d.error, d.reason) == (
        Outcome.ABANDONED,
        "AlreadyInSwarm",
        "join failed: AlreadyInSwarm",
    )
    labels = next(m.labels for m in real() if m.node_id == other_node)
    assert labels["instance-id"] == other.instance_id and labels["az"] == B


# --- the node id a joining node reports -------------------------------------------------------------------


def _lie_with_a_node_that_joined_meanwhile(
    world: World, monkeypatch: pytest.MonkeyPatch, **seen: object
) -> tuple[str, str]:
    """A worker joins; its node then reports the id of another worker's node that joined while this join
    ran (so it was not among the members read before the join). Returns (that worker, its node id)."""
    _managers(world, A)
    other = world.launch(Role.WORKER, B)
    assert world.service.handle(other).outcome is Outcome.JOINED
    other_node = world.swarm.node_id_of(other.instance_id)
    assert other_node is not None
    real_members, real_join = world.swarm.members, world.swarm.join
    joined = {"done": False}

    def members() -> Sequence[Member]:
        shown = members_seen_as(real_members, lambda: _all_of(real_members), **seen)()
        return shown if joined["done"] else [m for m in shown if m.node_id != other_node]

    def join(instance_id: str, role: Role) -> str:
        real_join(instance_id, role)
        joined["done"] = True
        return other_node

    monkeypatch.setattr(world.swarm, "members", members)
    monkeypatch.setattr(world.swarm, "join", join)
    return other.instance_id, other_node


def _all_of(members: Callable[[], Sequence[Member]]) -> set[str]:
    return {m.node_id for m in members()}


@pytest.mark.parametrize("seen", [{}, {"instance_id": None}], ids=["instance-id", "label-only"])
def test_a_node_id_of_a_node_labelled_for_another_instance_is_never_labelled_again(
    world: World, monkeypatch: pytest.MonkeyPatch, seen: dict[str, object]
) -> None:
    other, other_node = _lie_with_a_node_that_joined_meanwhile(world, monkeypatch, **seen)
    action = world.launch(Role.WORKER, C)
    d = world.service.handle(action)
    assert d == LaunchDecision(
        Outcome.ABANDONED,
        "join failed: _ForeignNode",
        action.instance_id,
        Role.WORKER,
        C,
        LifecycleResult.ABANDON,
        CompletionOutcome.COMPLETED,
        error="_ForeignNode",
    )
    labels = next(m.labels for m in world.swarm.members() if m.node_id == other_node)
    assert (labels["instance-id"], labels["az"]) == (other, B)


# --- the join order: which managers count, which changes a join waits for ------------------------------


@pytest.fixture
def five(world: World) -> World:
    """Five managers standing 2-2-1 (they survive one AZ loss; a third in us-east-1a would leave none)."""
    _managers(world, A, B, C, A, B)
    return world


def test_workers_are_never_ordered_even_behind_another_workers_launch(five: World) -> None:
    world = five
    worker_a = world.launch(Role.WORKER, A)
    world.launch(Role.WORKER, C)  # launching where a manager would be needed: not a reason for a worker
    assert world.service.handle(worker_a) == _joined(world, worker_a.instance_id, Role.WORKER, A)


def test_workers_do_not_count_in_the_managers_layout(five: World) -> None:
    world = five
    for _ in range(2):
        worker = world.launch(Role.WORKER, C)
        assert world.service.handle(worker).outcome is Outcome.JOINED  # 2-2-1 managers, 2 workers in c
    third_a = world.launch(Role.MANAGER, A)
    second_c = world.launch(Role.MANAGER, C)
    assert world.service.handle(third_a) == _waits(
        third_a.instance_id, A, second_c.instance_id, "launching", C
    )


def test_a_manager_whose_demotion_is_reported_but_still_votes_counts(
    five: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = five
    in_b = world.node_of(f"i-{2:017x}")
    monkeypatch.setattr(
        world.swarm,
        "members",
        members_seen_as(world.swarm.members, lambda: {in_b}, role=Role.WORKER, in_raft=True),
    )
    third_a = world.launch(Role.MANAGER, A)
    second_c = world.launch(Role.MANAGER, C)
    assert world.service.handle(third_a) == _waits(
        third_a.instance_id, A, second_c.instance_id, "launching", C
    )


def test_a_manager_in_an_az_the_group_does_not_list_joins(five: World) -> None:
    world = five
    d = world.launch(Role.MANAGER, "us-east-1d")  # the group's AZs changed since it was launched
    world.launch(Role.MANAGER, C)
    assert world.service.handle(d) == _joined(
        world, d.instance_id, Role.MANAGER, "us-east-1d", "joined as manager"
    )


def test_a_launch_whose_instance_is_gone_is_not_waited_for(five: World) -> None:
    world = five
    third_a = world.launch(Role.MANAGER, A)
    second_c = world.launch(Role.MANAGER, C)
    world.gone(second_c.instance_id)  # terminated while its launch hook waited
    assert world.service.handle(third_a) == _joined(world, third_a.instance_id, Role.MANAGER, A)


def test_an_in_service_instance_the_swarm_lost_is_not_a_launch_to_wait_for(five: World) -> None:
    world = five
    third_a = world.launch(Role.MANAGER, A)
    lost = world.launch(Role.MANAGER, C)
    world.fleet.by_id[lost.instance_id] = world.fleet.by_id[lost.instance_id].model_copy(
        update={"lifecycle_state": "InService"}
    )
    assert world.service.handle(third_a) == _joined(world, third_a.instance_id, Role.MANAGER, A)


def test_a_leaving_manager_whose_removal_would_not_help_is_passed_over_for_a_launch_that_does(
    five: World,
) -> None:
    world = five
    old_b = f"i-{2:017x}"
    world.fleet.terminate(old_b, decrement=False)  # 2-1-1 without it: a third in a still lowers it
    third_a = world.launch(Role.MANAGER, A)
    second_c = world.launch(Role.MANAGER, C)
    assert world.service.handle(third_a) == _waits(
        third_a.instance_id, A, second_c.instance_id, "launching", C
    )


def test_an_already_demoted_manager_leaving_is_not_a_change_to_wait_for(five: World) -> None:
    world = five
    extra = _managers(world, A)[0]  # 3-2-1
    world.swarm.demote(world.node_of(extra))  # the guard demoted it: 2-2-1 managers again
    world.fleet.terminate(extra, decrement=False)
    third_a = world.launch(Role.MANAGER, A)
    second_c = world.launch(Role.MANAGER, C)
    assert world.service.handle(third_a) == _waits(
        third_a.instance_id, A, second_c.instance_id, "launching", C
    )


def test_a_replacement_waits_for_a_manager_whose_demotion_is_reported_but_still_votes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _managers(world, A, B, C, A, B, C, A)  # 3-2-2
    old = f"i-{1:017x}"
    node = world.node_of(old)
    monkeypatch.setattr(
        world.swarm,
        "members",
        members_seen_as(world.swarm.members, lambda: {node}, role=Role.WORKER, in_raft=True),
    )
    world.fleet.terminate(old, decrement=False)
    replacement = world.launch(Role.MANAGER, A)
    assert world.service.handle(replacement) == _waits(replacement.instance_id, A, old, "leaving", A)


@pytest.mark.parametrize("seen", [{}, {"instance_id": None}], ids=["instance-id", "label-only"])
def test_a_replacement_waits_for_the_manager_it_replaces_however_the_orchestrator_names_it(
    world: World, monkeypatch: pytest.MonkeyPatch, seen: dict[str, object]
) -> None:
    _managers(world, A, B, C, A, B, C, A)  # 3-2-2
    real = world.swarm.members
    monkeypatch.setattr(world.swarm, "members", members_seen_as(real, lambda: _all_of(real), **seen))
    old = f"i-{1:017x}"
    world.fleet.terminate(old, decrement=False)
    replacement = world.launch(Role.MANAGER, A)
    assert world.service.handle(replacement) == _waits(replacement.instance_id, A, old, "leaving", A)


@pytest.fixture
def one_two_two(world: World) -> tuple[World, list[str]]:
    """Five managers standing 1-2-2 (one AZ loss survived; a third in us-east-1b would leave none)."""
    return world, _managers(world, A, B, C, B, C)


def test_a_replacement_waits_for_the_manager_it_replaces_in_its_own_az(
    one_two_two: tuple[World, list[str]],
) -> None:
    world, ids = one_two_two
    old_b = ids[1]
    world.fleet.terminate(old_b, decrement=False)  # 1-1-2 after it: the best four managers can do
    replacement = world.launch(Role.MANAGER, B)
    assert world.service.handle(replacement) == _waits(replacement.instance_id, B, old_b, "leaving", B)


def test_a_replacement_does_not_wait_for_a_removal_in_another_az_that_leaves_it_lowering(
    one_two_two: tuple[World, list[str]],
) -> None:
    world, ids = one_two_two
    old_c = ids[2]
    world.fleet.terminate(old_c, decrement=False)  # 1-3-1 with the replacement: no AZ loss survived
    replacement = world.launch(Role.MANAGER, B)
    assert world.service.handle(replacement) == _joined(world, replacement.instance_id, Role.MANAGER, B)


def test_a_join_that_keeps_the_tolerance_with_a_down_voter_still_waits_if_it_lowers_it_without(
    world: World,
) -> None:
    # 2-2-2 with one in us-east-1c crashed: 2-2-1 up of 6 voters (quorum 4) survives no AZ loss, and 3-2-1
    # up of 7 none either; but 3-2-1 once the Down one is removed survives none where 2-2-1 survives one:
    # the third in us-east-1a waits for the one launching in c (2-2-2 up of 7 survives one, now and after)
    crashed = _managers(world, A, B, C, A, B, C)[5]
    world.swarm.crash(crashed)
    world.clock.advance(30)  # shown Down, still a voter
    third_a = world.launch(Role.MANAGER, A)
    second_c = world.launch(Role.MANAGER, C)
    assert world.service.handle(third_a) == _waits(
        third_a.instance_id, A, second_c.instance_id, "launching", C
    )


def test_a_replacement_beside_two_down_voters_joins_at_once_when_it_lowers_neither(world: World) -> None:
    # 2-2-3 with two in us-east-1c crashed, one of them being removed: 2-2-1 up of 7 voters (quorum 4)
    # survives no AZ loss and 2-2-2 up of 8 none either; without the Down ones 2-2-1 and 2-2-2 both survive
    # one: the replacement joins now rather than after the removal
    ids = _managers(world, A, B, C, A, B, C, C)
    for crashed in ids[5:]:
        world.swarm.crash(crashed)
    world.clock.advance(30)  # both shown Down, still voters
    world.fleet.terminate(ids[6], decrement=False)
    replacement = world.launch(Role.MANAGER, C)
    assert world.service.handle(replacement) == _joined(world, replacement.instance_id, Role.MANAGER, C)


def test_every_down_voter_counts_in_rafts_n_not_only_one(world: World) -> None:
    # 4-3-3 with two in us-east-1a crashed: 2-3-3 up of 10 voters (quorum 6) survives no AZ loss, and 2-4-3
    # up of 11 none either; without the Down ones 2-3-3 and 2-4-3 both survive one: the fourth in
    # us-east-1b joins now. Counted as one Down voter, 2-3-3 of 9 (quorum 5) would survive one and 2-4-3 of
    # 10 none, and the join would wait for the launch in a.
    ids = _managers(world, A, B, C, A, B, C, B, C, A, A)
    for crashed in ids[8:]:
        world.swarm.crash(crashed)
    world.clock.advance(30)  # both shown Down, still voters
    fourth_b = world.launch(Role.MANAGER, B)
    world.launch(Role.MANAGER, A)  # a replacement launching in a, whose join would lower neither
    assert world.service.handle(fourth_b) == _joined(world, fourth_b.instance_id, Role.MANAGER, B)


def test_an_unreachable_voter_still_shown_ready_counts_as_down_and_its_removal_as_a_down_ones(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2-2-3, the one leaving in us-east-1c unreachable (its Status not Down yet): 2-2-2 up of 7 voters
    # survives an AZ loss, 3-2-2 up of 8 none, 3-2-2 of 7 once it is removed one: the replacement in a waits
    old = _managers(world, A, B, C, A, B, C, C)[6]
    world.swarm.crash(old)
    world.clock.advance(30)
    node = world.node_of(old)
    monkeypatch.setattr(
        world.swarm,
        "members",
        members_seen_as(world.swarm.members, lambda: {node}, ready=True),
    )
    world.fleet.terminate(old, decrement=False)
    replacement = world.launch(Role.MANAGER, A)
    assert world.service.handle(replacement) == _waits(replacement.instance_id, A, old, "leaving", C)


def test_a_leaving_manager_is_counted_out_of_the_az_its_label_names(world: World) -> None:
    """The managers are counted by their az label; the one leaving is taken out of the same AZ, even if
    EC2 now describes its instance in another."""
    _managers(world, A, B, C, A, B, C, A)  # 3-2-2
    old = f"i-{1:017x}"
    world.fleet.by_id[old] = world.fleet.by_id[old].model_copy(update={"az": C})
    world.fleet.terminate(old, decrement=False)
    replacement = world.launch(Role.MANAGER, A)
    assert world.service.handle(replacement) == _waits(replacement.instance_id, A, old, "leaving", C)


def test_a_leaving_manager_without_an_az_label_is_counted_out_of_its_instances_az(
    five: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = five
    unlabelled = _managers(world, A)[0]  # its az label is missing: the layout counts 2-2-1
    node = world.node_of(unlabelled)
    monkeypatch.setattr(
        world.swarm,
        "members",
        members_seen_as(
            world.swarm.members,
            lambda: {node},
            labels={"instance-id": unlabelled, "asg": "mgr"},
        ),
    )
    world.fleet.terminate(unlabelled, decrement=False)
    replacement = world.launch(Role.MANAGER, A)
    d = world.service.handle(replacement)
    assert d == _waits(replacement.instance_id, A, unlabelled, "leaving", A)


def test_a_leaving_manager_labelled_in_an_az_the_group_does_not_list_is_not_waited_for(five: World) -> None:
    world = five
    (in_d,) = _managers(world, "us-east-1d")  # not counted: the group's AZs are a, b, c
    world.fleet.terminate(in_d, decrement=False)
    third_a = world.launch(Role.MANAGER, A)
    assert world.service.handle(third_a) == _joined(world, third_a.instance_id, Role.MANAGER, A)


# --- the ticket a joining node is offered ---------------------------------------------------------------


def test_the_ticket_names_the_cluster_and_only_reachable_managers_and_lives_for_the_handoff_ttl(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _managers(world, A, B, C)
    worker = world.launch(Role.WORKER, A)
    assert world.service.handle(worker).outcome is Outcome.JOINED  # a worker node has an address too
    world.swarm.crash(ids[2])  # an unreachable manager is no address to join through
    world.clock.advance(60)
    offered: list[tuple[str, JoinTicket, int]] = []
    real_offer = world.handoff.offer

    def offer(instance_id: str, ticket: JoinTicket, ttl_seconds: int) -> None:
        offered.append((instance_id, ticket, ttl_seconds))
        real_offer(instance_id, ticket, ttl_seconds)

    monkeypatch.setattr(world.handoff, "offer", offer)
    action = world.launch(Role.WORKER, B)
    assert world.service.handle(action).outcome is Outcome.JOINED
    ((iid, ticket, ttl),) = offered
    ip = {i: world.fleet.by_id[i].private_ip for i in ids}
    assert (iid, ticket.role, ticket.cluster, ticket.manager_addresses, ttl) == (
        action.instance_id,
        Role.WORKER,
        "demo",
        (f"{ip[ids[0]]}:2377", f"{ip[ids[1]]}:2377"),
        world.service.config.handoff_ttl,
    )
    assert ticket.token.get_secret_value() == world.vault.current[Role.WORKER]


# --- what each decision says ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "said"),
    [("InService", "InService"), (None, "in no lifecycle state")],
    ids=["in-service", "none"],
)
def test_an_instance_not_launching_and_no_member_is_offered_nothing_and_told_why(
    world: World, state: str | None, said: str
) -> None:
    _managers(world, A)
    action = world.launch(Role.WORKER, B)
    iid = action.instance_id
    world.fleet.by_id[iid] = world.fleet.by_id[iid].model_copy(update={"lifecycle_state": state})
    assert world.service.handle(action) == LaunchDecision(
        Outcome.IGNORED,
        f"instance {iid} is {said}, not Pending:Wait, and no member: nothing is offered",
        iid,
        Role.WORKER,
        B,
        error="NotLaunchingInGroup",
    )
    assert iid not in {i for i, _r in world.handoff.offered}


def test_a_duplicate_event_finds_a_member_known_only_by_its_instance_label(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _managers(world, A)
    action = world.launch(Role.WORKER, B)
    first = world.service.handle(action)
    assert first.outcome is Outcome.JOINED
    real = world.swarm.members
    monkeypatch.setattr(
        world.swarm, "members", members_seen_as(real, lambda: _all_of(real), instance_id=None)
    )
    iid = action.instance_id
    world.fleet.by_id[iid] = world.fleet.by_id[iid].model_copy(update={"lifecycle_state": PENDING_WAIT})
    world.fleet.open_actions.add(iid)  # the completion has not been seen yet
    again = world.service.handle(action)
    assert again == LaunchDecision(
        Outcome.ALREADY_MEMBER,
        "already a member with the right role",
        iid,
        Role.WORKER,
        B,
        LifecycleResult.CONTINUE,
        CompletionOutcome.COMPLETED,
        first.node_id,
    )
    assert [i for i, _r in world.handoff.offered].count(iid) == 1


def test_a_retry_that_takes_the_unlabelled_node_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _managers(world, A)
    action = world.launch(Role.WORKER, B)
    real_label = world.swarm.label

    class Died(BaseException):
        pass

    def die(node_id: str, labels: dict[str, str]) -> None:
        raise Died

    monkeypatch.setattr(world.swarm, "label", die)
    with pytest.raises(Died):
        world.service.handle(action)
    monkeypatch.setattr(world.swarm, "label", real_label)
    assert world.service.handle(action) == LaunchDecision(
        Outcome.ALREADY_MEMBER,
        "an earlier try joined it (unlabelled): labelled",
        action.instance_id,
        Role.WORKER,
        B,
        LifecycleResult.CONTINUE,
        CompletionOutcome.COMPLETED,
        world.swarm.node_id_of(action.instance_id),
    )


def test_the_cluster_going_quiet_after_the_join_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _managers(world, A)
    real = world.swarm.members
    calls = {"n": 0}

    def unreachable_after_the_join() -> Sequence[Member]:
        calls["n"] += 1
        if calls["n"] >= 2:
            raise Unreachable("no manager answers")
        return real()

    monkeypatch.setattr(world.swarm, "members", unreachable_after_the_join)
    action = world.launch(Role.WORKER, B)
    assert world.service.handle(action) == LaunchDecision(
        Outcome.PENDING,
        "no manager of the cluster answers: waiting (hook kept alive)",
        action.instance_id,
        Role.WORKER,
        B,
        error="Unreachable",
    )


def test_a_booting_node_whose_hook_already_ended_is_gone_with_its_role(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _managers(world, A)

    def booting(instance_id: str, role: Role) -> str:
        raise NodeNotReady("SSM does not know the instance yet")

    monkeypatch.setattr(world.swarm, "join", booting)
    action = world.launch(Role.WORKER, B)
    world.fleet.open_actions.discard(action.instance_id)
    assert world.service.handle(action) == LaunchDecision(
        Outcome.GONE, "lifecycle action already finished", action.instance_id, Role.WORKER
    )


def test_the_cluster_losing_its_leader_after_the_join_keeps_the_launch_pending(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node joined; then the cluster lost quorum before it showed Ready: not the instance's fault.
    Pending with a heartbeat, never ABANDON; the record stays for the next try."""
    _managers(world, A)
    real = world.swarm.members
    calls = {"n": 0}

    def no_leader_after_the_join() -> Sequence[Member]:
        calls["n"] += 1
        if calls["n"] >= 2:  # the members read before the join answers; the Ready wait's does not
            raise NoLeader("the swarm does not have a leader")
        return real()

    monkeypatch.setattr(world.swarm, "members", no_leader_after_the_join)
    action = world.launch(Role.WORKER, B)
    assert world.service.handle(action) == LaunchDecision(
        Outcome.PENDING,
        "the cluster has no leader (quorum lost): waiting (hook kept alive)",
        action.instance_id,
        Role.WORKER,
        B,
        error="NoLeader",
    )
    assert [(a.instance_id, r) for a, r in world.state.pending("demo")] == [(action.instance_id, Role.WORKER)]
    assert action.instance_id in world.fleet.heartbeats
    assert action.instance_id not in {iid for iid, *_ in world.fleet.completions}


def test_a_missing_token_abandons_with_the_whole_decision(world: World) -> None:
    _managers(world, A)
    del world.vault.current[Role.WORKER]
    action = world.launch(Role.WORKER, B)
    assert world.service.handle(action) == LaunchDecision(
        Outcome.ABANDONED,
        "no worker token in the vault",
        action.instance_id,
        Role.WORKER,
        B,
        LifecycleResult.ABANDON,
        CompletionOutcome.COMPLETED,
        error="SecretMissing",
    )


def _half_rotated(world: World) -> None:
    _managers(world, A)
    world.vault.current[Role.WORKER] = "SWMTKN-1-" + "0" * 50 + "-" + "9" * 25  # the swarm holds another


def test_a_token_refused_twice_defers_and_says_why(world: World) -> None:
    _half_rotated(world)
    action = world.launch(Role.WORKER, B)
    with pytest.raises(JoinDeferred) as caught:
        world.service.handle(action)
    assert str(caught.value) == (
        f"{action.instance_id}: the join token was refused twice (a rotation is under way); "
        "its launch stays pending"
    )


def test_a_token_refused_twice_for_a_launch_whose_hook_ended_is_gone(world: World) -> None:
    _half_rotated(world)
    action = world.launch(Role.WORKER, B)
    world.fleet.open_actions.discard(action.instance_id)
    assert world.service.handle(action) == LaunchDecision(
        Outcome.GONE, "lifecycle action already finished", action.instance_id, Role.WORKER
    )
    assert world.state.pending("demo") == []


# --- the pending list: which records are worked, dropped or kept ----------------------------------------


def test_a_bootstrap_claim_taken_over_is_held_by_the_new_manager_while_it_boots(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = world.launch(Role.MANAGER, A)
    assert world.state.claim_bootstrap("demo", gone.instance_id)
    world.gone(gone.instance_id)  # claimed, then the instance died
    monkeypatch.setattr(world.swarm, "init", lambda *_a: (_ for _ in ()).throw(NodeNotReady("booting")))
    nxt = world.launch(Role.MANAGER, B)
    with pytest.raises(JoinDeferred):
        world.service.handle(nxt)
    assert world.state.bootstrap_owner("demo") == nxt.instance_id  # the claim is its own now
    assert (
        world.service.handle(world.launch(Role.MANAGER, C)).outcome is Outcome.PENDING
    )  # held: no other init


def test_every_pending_launch_is_told_when_no_whole_budget_is_left(world: World) -> None:
    _managers(world, A)
    waiting = [world.launch(Role.WORKER, az) for az in (B, C)]
    for action in waiting:
        world.state.add_pending("demo", action, Role.WORKER)
    budget = world.service.config.join_budget
    assert world.service.finish_pending(time_left=lambda: budget - 1) == tuple(
        LaunchDecision(Outcome.PENDING, "not enough time left in this invocation", a.instance_id)
        for a in waiting
    )
    assert [a.instance_id for a, _r in world.state.pending("demo")] == [a.instance_id for a in waiting]


def test_a_deferred_pending_launch_does_not_stop_the_next_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _managers(world, A)
    booting, ready = world.launch(Role.WORKER, B), world.launch(Role.WORKER, C)
    for action in (booting, ready):
        world.state.add_pending("demo", action, Role.WORKER)
    real_join = world.swarm.join

    def join(instance_id: str, role: Role) -> str:
        if instance_id == booting.instance_id:
            raise NodeNotReady("booting")
        return real_join(instance_id, role)

    monkeypatch.setattr(world.swarm, "join", join)
    assert world.service.finish_pending() == (
        LaunchDecision(
            Outcome.PENDING,
            f"{booting.instance_id} cannot run commands yet; its launch stays pending",
            booting.instance_id,
            Role.WORKER,
            B,
        ),
        _joined(world, ready.instance_id, Role.WORKER, C),
    )
    assert [a.instance_id for a, _r in world.state.pending("demo")] == [booting.instance_id]


@pytest.mark.parametrize("state", ["Terminating:Wait", "Standby", "Detaching"])
def test_a_pending_launch_whose_instance_is_no_longer_launching_or_in_service_is_dropped(
    world: World, state: str
) -> None:
    _managers(world, A)
    action = world.launch(Role.WORKER, B)
    world.state.add_pending("demo", action, Role.WORKER)
    iid = action.instance_id
    world.fleet.by_id[iid] = world.fleet.by_id[iid].model_copy(update={"lifecycle_state": state})
    assert world.service.finish_pending() == ()
    assert world.state.pending("demo") == []
    assert iid not in {i for i, _r in world.handoff.offered}


def test_a_pending_launch_whose_group_lost_its_role_tag_is_dropped(world: World) -> None:
    _managers(world, A)
    action = world.launch(Role.WORKER, B)
    world.state.add_pending("demo", action, Role.WORKER)
    world.fleet.add_group("wrk", "demo", None, ZONES)  # autojoin:role removed from the group
    assert world.service.finish_pending() == ()
    assert world.state.pending("demo") == []
    assert action.instance_id not in {i for i, _r in world.handoff.offered}


# --- the early answers of handle and the bootstrap's -------------------------------------------------------


def test_a_group_of_another_cluster_is_ignored_with_the_whole_decision(world: World) -> None:
    world.fleet.add_group("theirs", "other-cluster", Role.WORKER, ZONES)
    action = world.launch(Role.WORKER, A, group="theirs")
    assert world.service.handle(action) == LaunchDecision(
        Outcome.IGNORED, "group theirs is not a group of cluster demo", action.instance_id
    )
    assert world.fleet.completions == []


def test_a_warm_pool_launch_is_completed_and_says_so(world: World) -> None:
    action = world.launch(Role.WORKER, B).model_copy(update={"destination": "WarmPool"})
    assert world.service.handle(action) == LaunchDecision(
        Outcome.WARM_POOL,
        "launch into the warm pool is not a join",
        action.instance_id,
        Role.WORKER,
        result=LifecycleResult.CONTINUE,
        completion=CompletionOutcome.COMPLETED,
    )
    assert world.fleet.completions == [
        (action.instance_id, LifecycleResult.CONTINUE, CompletionOutcome.COMPLETED)
    ]
    assert world.handoff.offered == []


def test_a_gone_instance_gets_the_whole_decision(world: World) -> None:
    action = world.launch(Role.MANAGER, C)
    world.gone(action.instance_id)
    assert world.service.handle(action) == LaunchDecision(
        Outcome.GONE, "instance is gone: nothing to do", action.instance_id, Role.MANAGER
    )


def test_an_instance_named_in_another_groups_event_is_ignored_with_the_whole_decision(world: World) -> None:
    _managers(world, A)
    worker = world.launch(Role.WORKER, B)
    forged = worker.model_copy(update={"group": "mgr"})
    assert world.service.handle(forged) == LaunchDecision(
        Outcome.IGNORED,
        f"instance {worker.instance_id} is not a member of group mgr: nothing is offered",
        worker.instance_id,
        Role.MANAGER,
        B,
        error="NotLaunchingInGroup",
    )


def test_a_first_manager_without_a_private_ip_is_initialised_with_no_advertise_address(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    action = world.launch(Role.MANAGER, A)
    iid = action.instance_id
    world.fleet.by_id[iid] = world.fleet.by_id[iid].model_copy(update={"private_ip": None})
    calls: list[tuple[str, str]] = []
    real_init = world.swarm.init

    def init(instance_id: str, advertise_address: str) -> str:
        calls.append((instance_id, advertise_address))
        return real_init(instance_id, advertise_address)

    monkeypatch.setattr(world.swarm, "init", init)
    assert world.service.handle(action).outcome is Outcome.BOOTSTRAPPED
    assert calls == [(iid, "")]  # the node picks its own address, never a made-up one


def test_a_booting_first_manager_whose_hook_ended_is_gone_as_a_manager(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(world.swarm, "init", lambda *_a: (_ for _ in ()).throw(NodeNotReady("booting")))
    first = world.launch(Role.MANAGER, A)
    world.fleet.open_actions.discard(first.instance_id)
    assert world.service.handle(first) == LaunchDecision(
        Outcome.GONE, "lifecycle action already finished", first.instance_id, Role.MANAGER
    )


def test_a_failed_init_abandons_with_the_whole_decision(world: World) -> None:
    action = world.launch(Role.MANAGER, A)
    world.swarm.crash(action.instance_id)
    assert world.service.handle(action) == LaunchDecision(
        Outcome.ABANDONED,
        "cluster init failed: Unreachable",
        action.instance_id,
        Role.MANAGER,
        A,
        LifecycleResult.ABANDON,
        CompletionOutcome.COMPLETED,
        error="Unreachable",
    )


# --- what a finished join does with the pending list --------------------------------------------------------


def test_a_retried_event_that_joins_clears_its_own_pending_record_and_finishes_no_duplicate(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _managers(world, A)
    action = world.launch(Role.WORKER, B)
    monkeypatch.setattr(world.swarm, "join", lambda *_a: (_ for _ in ()).throw(NodeNotReady("booting")))
    with pytest.raises(JoinDeferred):
        world.service.handle(action)  # recorded as pending, hook kept alive
    monkeypatch.undo()
    assert world.service.handle(action) == _joined(
        world, action.instance_id, Role.WORKER, B
    )  # no also_joined
    assert world.state.pending("demo") == []


def test_only_a_new_join_finishes_the_pending_launches(world: World) -> None:
    _managers(world, A)
    member = world.launch(Role.WORKER, B)
    assert world.service.handle(member).outcome is Outcome.JOINED
    left_behind = world.launch(Role.WORKER, C)
    world.state.add_pending("demo", left_behind, Role.WORKER)  # a launch whose event was lost
    iid = member.instance_id
    world.fleet.by_id[iid] = world.fleet.by_id[iid].model_copy(update={"lifecycle_state": PENDING_WAIT})
    again = world.service.handle(member)  # a late duplicate: already a member, no new join
    assert (again.outcome, again.also_joined) == (Outcome.ALREADY_MEMBER, ())
    assert [a.instance_id for a, _r in world.state.pending("demo")] == [left_behind.instance_id]
    assert left_behind.instance_id not in {i for i, _r in world.handoff.offered}


def test_a_join_starts_the_pending_launches_only_while_a_whole_budget_is_left(world: World) -> None:
    _managers(world, A)
    left_behind = world.launch(Role.WORKER, C)
    world.state.add_pending("demo", left_behind, Role.WORKER)
    budget = world.service.config.join_budget
    action = world.launch(Role.WORKER, B)
    d = world.service.handle(action, time_left=lambda: budget - 1)
    assert d.also_joined == (
        LaunchDecision(Outcome.PENDING, "not enough time left in this invocation", left_behind.instance_id),
    )
    assert [a.instance_id for a, _r in world.state.pending("demo")] == [left_behind.instance_id]
