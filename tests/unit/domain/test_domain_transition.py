"""Transition plans: single steps, every state safe, add before remove, shortest."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.domain.brute_force import tolerated

from autojoin.domain.quorum import assess
from autojoin.domain.transition import Step, TransitionPlan, plan_transition
from autojoin.errors import PlacementError

PROPS = settings(max_examples=200, deadline=None)
NAMES = ["a", "b", "c", "d"]


def shape(plan: TransitionPlan) -> list[tuple[str, str]]:
    return [(s.action, s.az) for s in plan.steps]


# --- examples -------------------------------------------------------------------------------------


def test_3_2_to_2_2_1_adds_in_the_new_az_before_removing() -> None:
    plan = plan_transition({"a": 3, "b": 2}, {"a": 2, "b": 2, "c": 1})
    assert shape(plan) == [("add", "c"), ("remove", "a")]
    assert plan.steps[0].layout_after == {"a": 3, "b": 2, "c": 1}
    assert plan.steps[-1].layout_after == {"a": 2, "b": 2, "c": 1}
    assert plan.steps[-1].tolerance.tolerates_zone_failures == 1
    assert plan.start.tolerates_zone_failures == 0
    assert plan.target.layout == {"a": 2, "b": 2, "c": 1}
    assert [s.healthy_after for s in plan.steps] == [6, 5]


def test_a_spare_worker_is_promoted_instead_of_adding() -> None:
    plan = plan_transition({"a": 3, "b": 2}, {"a": 2, "b": 2, "c": 1}, spare_workers={"c": 1, "a": 4})
    assert shape(plan) == [("promote", "c"), ("remove", "a")]


def test_each_spare_worker_is_promoted_once() -> None:
    plan = plan_transition({"a": 1}, {"a": 1, "b": 1, "c": 1}, spare_workers={"b": 1})
    assert sorted(shape(plan)) == [("add", "c"), ("promote", "b")]
    plan = plan_transition({"a": 2, "b": 2, "c": 1}, {"a": 2, "b": 2, "c": 3}, spare_workers={"c": 1})
    assert shape(plan) == [("promote", "c"), ("add", "c")]


def test_unhealthy_managers_go_first_and_count_against_quorum() -> None:
    plan = plan_transition({"a": 3, "b": 2}, {"a": 2, "b": 2, "c": 1}, unhealthy={"a": 1})
    assert shape(plan) == [("add", "c"), ("remove", "a")]
    assert [s.healthy_after for s in plan.steps] == [5, 5]  # the removed one was the unhealthy one


def test_same_layout_needs_no_steps() -> None:
    plan = plan_transition({"a": 1, "b": 1, "c": 1}, {"c": 1, "b": 1, "a": 1})
    assert plan.steps == ()
    assert plan.start == plan.target


def test_bootstrap_from_nothing() -> None:
    plan = plan_transition({}, {"a": 1, "b": 1, "c": 1})
    assert shape(plan) == [("add", "a"), ("add", "b"), ("add", "c")]


def test_moving_a_manager_between_azs_keeps_the_tolerance() -> None:
    plan = plan_transition({"a": 2, "b": 2, "c": 1}, {"a": 1, "b": 2, "c": 2})
    assert shape(plan) == [("add", "c"), ("remove", "a")]
    assert all(s.tolerance.tolerates_zone_failures >= 1 for s in plan.steps)


def test_a_temporary_manager_in_a_spare_az_when_no_direct_order_is_safe() -> None:
    # 1-1-1 -> 2-2-1 directly passes through 2-1-1 (survives no AZ loss); an empty AZ d lets it
    # go through 1-1-1-1 instead.
    plan = plan_transition({"a": 1, "b": 1, "c": 1, "d": 0}, {"a": 2, "b": 2, "c": 1})
    assert shape(plan) == [("add", "d"), ("add", "a"), ("add", "b"), ("remove", "d")]
    assert all(s.tolerance.tolerates_zone_failures >= 1 for s in plan.steps)


def test_no_safe_order_is_explained() -> None:
    with pytest.raises(
        PlacementError,
        match=r"no safe order from a=1,b=1,c=1 to a=2,b=2,c=1: every order passes through 4 managers, and no "
        r"layout of 4 managers over these 3 AZs survives 1 AZ loss \(it survives at best 0\)",
    ):
        plan_transition({"a": 1, "b": 1, "c": 1}, {"a": 2, "b": 2, "c": 1})
    with pytest.raises(PlacementError, match="no layout of 8 managers over these 6 AZs survives 2 AZ losses"):
        plan_transition(dict.fromkeys("abcdef", 1), {"a": 3, "b": 3, "c": 3, "d": 3, "e": 3, "f": 2})


def test_the_refusal_suggests_a_spare_az_only_when_one_would_help() -> None:
    with pytest.raises(PlacementError) as helped:
        plan_transition({"a": 1, "b": 1, "c": 1}, {"a": 3, "b": 3, "c": 3})
    assert str(helped.value) == (
        "no safe order from a=1,b=1,c=1 to a=3,b=3,c=3: every order passes through 4 managers, and no layout "
        "of 4 managers over these 3 AZs survives 1 AZ loss (it survives at best 0); an extra AZ with 0 "
        "managers in the current layout would let the plan pass"
    )
    with pytest.raises(PlacementError) as refused:
        plan_transition(dict.fromkeys("abcde", 1), dict.fromkeys("abcde", 3))
    assert str(refused.value) == (
        "no safe order from a=1,b=1,c=1,d=1,e=1 to a=3,b=3,c=3,d=3,e=3: every order passes through 6 "
        "managers, and no layout of 6 managers over these 5 AZs survives 2 AZ losses (it survives at best 1)"
    )


def test_a_cluster_without_quorum_is_refused() -> None:
    with pytest.raises(PlacementError, match=r"no quorum now \(1 healthy of 3 managers, quorum 2\)"):
        plan_transition({"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 1}, unhealthy={"a": 1, "b": 1})

    # quorum of all 5 managers (3), not of the 3 unhealthy ones (2)
    with pytest.raises(PlacementError) as refused:
        plan_transition({"a": 2, "b": 2, "c": 1}, {"a": 2, "b": 2, "c": 1}, unhealthy={"a": 2, "b": 1})
    assert str(refused.value) == (
        "the cluster has no quorum now (2 healthy of 5 managers, quorum 3): "
        "restore it before changing the layout"
    )


def test_a_dead_manager_is_replaced_before_a_healthy_one_goes() -> None:
    # 3 managers, 1 of them down in a. Removing b directly would leave 1 healthy of 2 (no quorum), so
    # the plan adds a healthy manager in a first and removes the dead one from a, then b goes.
    plan = plan_transition({"a": 2, "b": 1}, {"a": 2}, unhealthy={"a": 1})
    assert shape(plan) == [("add", "a"), ("remove", "a"), ("remove", "b")]
    assert [s.healthy_after for s in plan.steps] == [3, 3, 2]


@pytest.mark.parametrize(
    ("current", "target", "unhealthy", "message"),
    [
        ({"a": -1}, {"a": 1}, None, "the current layout has a negative count for a (-1)"),
        ({"a": 1}, {"a": -1, "b": 2}, None, "the target layout has a negative count for a (-1)"),
        ({"a": 1}, {"a": 1}, {"a": -1}, "the unhealthy count has a negative count for a (-1)"),
        ({"a": 1}, {"a": 1}, {"a": 2}, "a has 2 unhealthy managers but only 1 managers"),
        # an AZ the current layout does not name holds 0 managers, so none of them can be unhealthy
        ({"a": 3}, {"a": 3}, {"b": 1}, "b has 1 unhealthy managers but only 0 managers"),
        ({"a": 1}, {"a": 0}, None, "the target layout has no managers"),
        ({}, {}, None, "the target layout has no managers"),
    ],
)
def test_malformed_requests(
    current: dict[str, int], target: dict[str, int], unhealthy: dict[str, int] | None, message: str
) -> None:
    with pytest.raises(PlacementError) as err:
        plan_transition(current, target, unhealthy=unhealthy)
    assert str(err.value) == message


# --- properties ----------------------------------------------------------------------------------


def counts(max_count: int = 3) -> st.SearchStrategy[dict[str, int]]:
    return st.lists(st.integers(0, max_count), min_size=4, max_size=4).map(
        lambda c: {z: n for z, n in zip(NAMES, c, strict=True) if n or z < "c"}
    )


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    current = draw(counts())
    target = draw(counts())
    if not sum(target.values()):
        target["a"] = 1
    # mostly healthy: an occasional dead manager, so that most requests start from a working cluster
    unhealthy = {z: min(c, draw(st.sampled_from([0, 0, 0, 1, 2]))) for z, c in current.items() if c}
    return current, target, {z: u for z, u in unhealthy.items() if u}


def safe(layout: dict[str, int], healthy: int, floor: int) -> bool:
    n = sum(layout.values())
    return n > 0 and 2 * healthy > n and tolerated(layout) >= floor


def replay(
    current: dict[str, int], unhealthy: dict[str, int], moves: list[tuple[str, int]], floor: int
) -> bool:
    """Apply +1/-1 moves (removing unhealthy managers first); True if every state is safe."""
    layout = dict(current)
    down = dict(unhealthy)
    for az, delta in moves:
        layout[az] = layout.get(az, 0) + delta
        if delta < 0 and down.get(az, 0):
            down[az] -= 1
        if not safe(layout, sum(layout.values()) - sum(down.values()), floor):
            return False
    return True


@PROPS
@given(requests())
def test_every_plan_is_single_safe_steps_ending_at_the_target(
    req: tuple[dict[str, int], dict[str, int], dict[str, int]],
) -> None:
    current, target, unhealthy = req
    zones = sorted(set(current) | set(target))
    full = {z: current.get(z, 0) for z in zones}
    goal = {z: target.get(z, 0) for z in zones}
    floor = min(tolerated(full), tolerated(goal))
    healthy_now = sum(full.values()) - sum(unhealthy.values())
    direct: list[tuple[str, int]] = []
    for z in zones:
        d = goal[z] - full[z]
        direct += [(z, 1 if d > 0 else -1)] * abs(d)
    try:
        plan = plan_transition(current, target, unhealthy=unhealthy)
    except PlacementError:
        # refused: the cluster has no quorum now, or no order of the direct moves is safe
        if sum(full.values()) and 2 * healthy_now <= sum(full.values()):
            return
        assert not any(replay(full, unhealthy, list(p), floor) for p in set(itertools.permutations(direct)))
        return
    layout = dict(full)
    down = dict(unhealthy)
    for step in plan.steps:
        assert isinstance(step, Step)
        before = dict(layout)
        delta = 1 if step.action in ("add", "promote") else -1
        assert step.action in ("add", "remove")  # no spare workers given
        layout[step.az] += delta
        if delta < 0 and down.get(step.az, 0):
            down[step.az] -= 1
        assert step.layout_after == layout
        assert sum(abs(layout[z] - before[z]) for z in zones) == 1
        assert step.tolerance == assess(layout)
        healthy = sum(layout.values()) - sum(down.values())
        assert step.healthy_after == healthy
        assert safe(layout, healthy, floor), (step, floor)
    assert layout == goal
    assert plan.start == assess(full)
    assert plan.target == assess(goal)
    # shortest: the direct distance whenever some order of the direct moves is safe
    orders = set(itertools.permutations(direct)) if len(direct) <= 6 else set()
    if any(replay(full, unhealthy, list(p), floor) for p in orders):
        assert len(plan.steps) == len(direct)
    assert len(plan.steps) >= len(direct)
    # add before remove: whenever some adds-first order of the direct moves is safe, the plan is one
    ups = [m for m in direct if m[1] > 0]
    downs = [m for m in direct if m[1] < 0]
    if len(ups) <= 4 and len(downs) <= 4:
        adds_first_exists = any(
            replay(full, unhealthy, list(u) + list(d), floor)
            for u in set(itertools.permutations(ups))
            for d in set(itertools.permutations(downs))
        )
        actions = [s.action for s in plan.steps]
        if adds_first_exists:
            assert len(actions) == len(direct)
            assert actions == sorted(actions, key=lambda a: a == "remove"), actions


@PROPS
@given(requests(), st.lists(st.integers(0, 2), min_size=4, max_size=4))
def test_spare_workers_turn_adds_into_promotions_and_nothing_else(
    req: tuple[dict[str, int], dict[str, int], dict[str, int]], spare_list: list[int]
) -> None:
    current, target, unhealthy = req
    spares = dict(zip(NAMES, spare_list, strict=True))
    try:
        plain = plan_transition(current, target, unhealthy=unhealthy)
    except PlacementError:
        with pytest.raises(PlacementError):
            plan_transition(current, target, unhealthy=unhealthy, spare_workers=spares)
        return
    promoted = plan_transition(current, target, unhealthy=unhealthy, spare_workers=spares)
    assert [s.layout_after for s in promoted.steps] == [s.layout_after for s in plain.steps]
    for az in NAMES:
        adds = [s.action for s in promoted.steps if s.az == az and s.action in ("add", "promote")]
        assert adds.count("promote") == min(spares[az], len(adds))
        assert adds == sorted(adds, key=lambda a: a != "promote")  # the spare workers go first


def test_a_state_without_managers_is_never_safe() -> None:
    from autojoin.domain.transition import _problem

    assert _problem(("a", "b"), ((0, 0), (0, 0)), 0) == "no managers would be left"
    assert _problem(("a", "b"), ((1, 1), (0, 1)), 0) == "only 1 healthy of 2 managers (quorum 2)"
    assert _problem(("a", "b"), ((2, 1), (0, 0)), 1) == "a=2,b=1 survives 0 AZ losses, fewer than 1"
    assert _problem(("a", "b", "c"), ((1, 1, 1), (0, 0, 0)), 1) is None
