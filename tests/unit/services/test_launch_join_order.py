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
