"""Managers launched together join in an order that never lowers the AZ losses they survive.

Found by a chaos run (`autojoin simulate --chaos 500 --seed 500 --throttle 0.2 --duplicate 0.5`, timeline
76: 3 managers scaled to 7; throttled and repeated events let the third manager in us-east-1a join before
the one in us-east-1c, so the six managers stood 3-2-1 and survived no AZ loss, where 2-2-1 had survived one).
"""

from __future__ import annotations

from collections import Counter

import pytest
from tests.unit.services.launch_world import World, make_world

from autojoin.domain.model import LifecycleResult, Role
from autojoin.services.launch import Outcome

A, B, C = "us-east-1a", "us-east-1b", "us-east-1c"


@pytest.fixture
def world() -> World:
    w = make_world()
    for az in (A, B, C, A, B):  # 2-2-1
        assert w.service.handle(w.launch(Role.MANAGER, az)).result is LifecycleResult.CONTINUE
    return w


def _layout(world: World) -> Counter[str]:
    return Counter(m.labels["az"] for m in world.swarm.members() if m.role is Role.MANAGER and m.ready)


def test_a_manager_that_would_lower_the_tolerance_waits_for_one_launching_where_it_is_needed(
    world: World,
) -> None:
    third_a = world.launch(Role.MANAGER, A)
    second_c = world.launch(Role.MANAGER, C)

    deferred = world.service.handle(third_a)

    assert deferred.outcome is Outcome.PENDING and deferred.error == "JoinOrder"
    assert second_c.instance_id in deferred.reason and "fewer AZ losses" in deferred.reason
    assert third_a.instance_id not in {iid for iid, _ in world.handoff.offered}  # no token handed out
    assert third_a.instance_id in world.fleet.heartbeats  # its hook is kept alive
    assert [a.instance_id for a, _ in world.state.pending("demo")] == [third_a.instance_id]
    assert _layout(world) == Counter({A: 2, B: 2, C: 1})

    joined = world.service.handle(second_c)

    assert joined.outcome is Outcome.JOINED and joined.instance_id == second_c.instance_id
    assert [(d.instance_id, d.outcome) for d in joined.also_joined] == [(third_a.instance_id, Outcome.JOINED)]
    assert _layout(world) == Counter({A: 3, B: 2, C: 2})
    assert world.state.pending("demo") == []


def test_a_manager_is_never_held_back_for_nothing(world: World) -> None:
    # the only launch is the one that lowers the tolerance (the group put it there): it joins at once
    third_a = world.launch(Role.MANAGER, A)
    assert world.service.handle(third_a).outcome is Outcome.JOINED
    assert _layout(world) == Counter({A: 3, B: 2, C: 1})


def test_no_wait_for_a_launch_that_would_lower_the_tolerance_as_well(world: World) -> None:
    third_a = world.launch(Role.MANAGER, A)
    world.launch(Role.MANAGER, B)  # 2-3-1 is no better than 3-2-1
    assert world.service.handle(third_a).outcome is Outcome.JOINED


def test_a_launch_that_keeps_the_tolerance_is_not_held_back(world: World) -> None:
    second_c = world.launch(Role.MANAGER, C)
    world.launch(Role.MANAGER, A)
    assert world.service.handle(second_c).outcome is Outcome.JOINED
    assert _layout(world) == Counter({A: 2, B: 2, C: 2})


def test_workers_are_never_ordered(world: World) -> None:
    world.launch(Role.MANAGER, C)
    worker = world.launch(Role.WORKER, A)
    assert world.service.handle(worker).outcome is Outcome.JOINED


def _seven(world: World) -> None:
    for az in (C, A):  # 2-2-1 + c, a: 3-2-2
        assert world.service.handle(world.launch(Role.MANAGER, az)).outcome is Outcome.JOINED
    assert _layout(world) == Counter({A: 3, B: 2, C: 2})


def _manager_in(world: World, az: str) -> str:
    return next(
        m.labels["instance-id"]
        for m in world.swarm.members()
        if m.role is Role.MANAGER and m.labels["az"] == az
    )


def test_a_replacement_waits_for_the_manager_it_replaces_to_leave_when_that_removal_may_go(
    world: World,
) -> None:
    # found by chaos seed 500 timeline 393: 3-2-2, a manager in us-east-1a terminated and replaced; the
    # replacement joined first and the eight managers stood 4-2-2, which survives no AZ loss
    _seven(world)
    old = _manager_in(world, A)
    world.fleet.terminate(old, decrement=False)  # Terminating:Wait: the guard's hook is removing it
    replacement = world.launch(Role.MANAGER, A)

    deferred = world.service.handle(replacement)

    assert deferred.outcome is Outcome.PENDING and deferred.error == "JoinOrder"
    assert f"{old} leaving in {A} goes first" in deferred.reason
    assert replacement.instance_id not in {iid for iid, _ in world.handoff.offered}
    assert _layout(world) == Counter({A: 3, B: 2, C: 2})

    node = next(
        m.node_id for m in world.swarm.members() if m.labels["instance-id"] == old
    )  # the guard's work
    world.swarm.demote(node)
    world.swarm.leave(old)
    world.clock.advance(60)  # until the swarm shows it Down
    world.swarm.remove(node)
    world.gone(old)
    (joined,) = world.service.finish_pending()  # the reconciler's pass

    assert joined.outcome is Outcome.JOINED and joined.instance_id == replacement.instance_id
    assert _layout(world) == Counter({A: 3, B: 2, C: 2})


def test_a_replacement_never_waits_for_a_removal_that_waits_for_it() -> None:
    # three managers, one replaced: the guard keeps the old one until the replacement has joined (the
    # floor of 3), so the replacement must not wait for it
    w = make_world()
    for az in (A, B, C):
        assert w.service.handle(w.launch(Role.MANAGER, az)).result is LifecycleResult.CONTINUE
    old = _manager_in(w, A)
    w.fleet.terminate(old, decrement=False)
    replacement = w.launch(Role.MANAGER, A)
    assert w.service.handle(replacement).outcome is Outcome.JOINED
    assert _layout(w) == Counter({A: 2, B: 1, C: 1})


def _voters(world: World) -> int:
    return sum(1 for m in world.swarm.members() if m.role is Role.MANAGER or m.in_raft)


def test_a_replacement_waits_for_the_crashed_leader_it_replaces_while_that_one_still_votes() -> None:
    # found by chaos seed 500 timeline 383 (tests/localcloud/test_chaos.py runs it): 2-2-3, the leader in
    # us-east-1c crashed and its group replaced it; the old leader's removal was throttled and retried, so
    # the replacement joined while the crashed one was still a Down voter: 2-2-3 healthy of 8 voters
    # (quorum 5) survives no AZ loss, where 2-2-2 healthy of 7 survived one
    world = make_world()
    for az in (C, A, B, C, A, B, C):  # 2-2-3, the first manager (the leader) in us-east-1c
        assert world.service.handle(world.launch(Role.MANAGER, az)).result is LifecycleResult.CONTINUE
    assert _layout(world) == Counter({A: 2, B: 2, C: 3})
    leader = world.swarm.leader()
    assert leader is not None and world.fleet.by_id[leader].az == C
    world.swarm.crash(leader)
    world.clock.advance(30)  # a new leader, and the crashed one shown Down (still a voter)
    assert world.swarm.has_leader() and world.swarm.leader() != leader
    assert _layout(world) == Counter({A: 2, B: 2, C: 2}) and _voters(world) == 7
    world.fleet.terminate(leader, decrement=False)  # Terminating:Wait: the guard's hook is removing it
    replacement = world.launch(Role.MANAGER, C)

    deferred = world.service.handle(replacement)

    assert deferred.outcome is Outcome.PENDING and deferred.error == "JoinOrder"
    assert f"{leader} leaving in {C} goes first" in deferred.reason
    assert replacement.instance_id not in {iid for iid, _ in world.handoff.offered}  # no token handed out
    assert _layout(world) == Counter({A: 2, B: 2, C: 2}) and _voters(world) == 7

    node = world.swarm.node_id_of(leader)  # the guard's work: demote the Down voter, remove it
    assert node is not None
    world.swarm.demote(node)
    world.swarm.remove(node)
    world.gone(leader)
    (joined,) = world.service.finish_pending()  # the reconciler's pass

    assert joined.outcome is Outcome.JOINED and joined.instance_id == replacement.instance_id
    assert _layout(world) == Counter({A: 2, B: 2, C: 3}) and _voters(world) == 7


def test_a_replacement_joins_beside_a_down_voter_when_that_does_not_lower_the_tolerance(
    world: World,
) -> None:
    # 2-2-1 with the one in us-east-1c crashed and replaced: 2-2-0 of 5 survives no AZ loss, 2-2-1 of 6
    # (one Down) survives none either; the replacement joins at once, whatever the old one's removal does
    old = _manager_in(world, C)
    world.swarm.crash(old)
    world.clock.advance(30)
    world.fleet.terminate(old, decrement=False)
    replacement = world.launch(Role.MANAGER, C)
    assert world.service.handle(replacement).outcome is Outcome.JOINED
    assert _layout(world) == Counter({A: 2, B: 2, C: 1}) and _voters(world) == 6
