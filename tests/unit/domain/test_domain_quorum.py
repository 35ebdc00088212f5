"""Quorum maths: the seed's worked examples, then properties against a brute-force re-implementation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.domain.brute_force import fractions, majority, tolerated

from autojoin.domain.quorum import (
    Tolerance,
    assess,
    better,
    fault_tolerance,
    layout_key,
    quorum,
    survival_fractions,
    zone_failures_tolerated,
)

PROPS = settings(max_examples=200, deadline=None)
NAMES = ["a", "b", "c", "d", "e", "f"]


def layouts(max_zones: int = 6, max_count: int = 5) -> st.SearchStrategy[dict[str, int]]:
    return st.lists(st.integers(0, max_count), min_size=1, max_size=max_zones).map(
        lambda counts: dict(zip(NAMES, counts, strict=False))
    )


# --- the seed's worked examples -------------------------------------------------------------------


def test_five_managers_as_3_2_over_two_azs_survive_no_az_loss() -> None:
    tol = assess({"us-east-1a": 3, "us-east-1b": 2})
    assert tol.managers == 5
    assert tol.quorum == 3
    assert tol.tolerates_node_failures == 2
    assert tol.tolerates_zone_failures == 0
    assert tol.fatal_zones == ("us-east-1a",)  # losing the AZ with 3 loses quorum
    assert tol.zone_failure_survival == {1: 0.5}  # losing the AZ with 2 is fine


def test_2_2_1_over_three_azs_survives_any_one() -> None:
    tol = assess({"a": 2, "b": 2, "c": 1})
    assert tol.tolerates_zone_failures == 1
    assert tol.zone_failure_survival == {1: 1.0, 2: 0.0}
    assert tol.fatal_zones == ()


def test_2_1_1_1_over_four_survives_any_one_and_half_of_the_pairs() -> None:
    tol = assess({"a": 2, "b": 1, "c": 1, "d": 1})
    assert tol.tolerates_zone_failures == 1
    assert tol.zone_failure_survival[1] == 1.0
    assert tol.zone_failure_survival[2] == 0.5  # the 3 pairs of 1-manager AZs out of 6
    assert tol.zone_failure_survival[3] == 0.0


def test_1_1_1_1_1_over_five_survives_any_two() -> None:
    tol = assess({z: 1 for z in "abcde"})
    assert tol.tolerates_zone_failures == 2
    assert tol.zone_failure_survival == {1: 1.0, 2: 1.0, 3: 0.0, 4: 0.0}


def test_json_has_exactly_the_documented_keys_with_string_ks() -> None:
    data = assess({"b": 1, "a": 2, "c": 2}).to_json()
    assert set(data) == {
        "managers",
        "layout",
        "quorum",
        "tolerates_node_failures",
        "tolerates_zone_failures",
        "zone_failure_survival",
    }
    assert data["layout"] == {"a": 2, "b": 1, "c": 2}
    assert list(data["layout"]) == ["a", "b", "c"]
    assert data["zone_failure_survival"] == {"1": 1.0, "2": 0.0}


# --- edge cases ----------------------------------------------------------------------------------


def test_small_quorums() -> None:
    assert [quorum(n) for n in range(1, 8)] == [1, 2, 2, 3, 3, 4, 4]
    assert [fault_tolerance(n) for n in range(8)] == [0, 0, 0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("n", [0, -1])
def test_quorum_of_no_managers_is_refused(n: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        quorum(n)


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        fault_tolerance(-1)
    with pytest.raises(ValueError, match="AZ a has a negative"):
        zone_failures_tolerated({"a": -1, "b": 2})


def test_empty_and_zero_layouts() -> None:
    assert zone_failures_tolerated({}) == 0
    assert survival_fractions({}) == {}
    tol = assess({"a": 0, "b": 0})
    assert (tol.managers, tol.quorum, tol.tolerates_zone_failures) == (0, 0, 0)
    assert tol.zone_failure_survival == {1: 0.0}
    assert tol.fatal_zones == ()


def test_one_az_survives_no_az_loss_and_has_no_fractions() -> None:
    tol = assess({"a": 5})
    assert tol.tolerates_zone_failures == 0
    assert tol.zone_failure_survival == {}
    assert tol.fatal_zones == ("a",)


def test_down_voters_count_in_the_majority_but_keep_none() -> None:
    # chaos seed 500 timeline 383: 2-2-2 up plus a crashed voter (7, quorum 4) survives one AZ loss;
    # 2-2-3 up plus it (8, quorum 5) survives none, though 2-2-3 alone (quorum 4) survives one
    assert zone_failures_tolerated({"a": 2, "b": 2, "c": 2}, down=1) == 1
    assert zone_failures_tolerated({"a": 2, "b": 2, "c": 3}, down=1) == 0
    assert zone_failures_tolerated({"a": 2, "b": 2, "c": 3}) == 1
    assert zone_failures_tolerated({"a": 1, "b": 1, "c": 1}, down=3) == 0  # 3 up of 6: no quorum at all
    assert zone_failures_tolerated({"a": 0, "b": 0}, down=2) == 0
    with pytest.raises(ValueError, match="down voters cannot be negative"):
        zone_failures_tolerated({"a": 1, "b": 1, "c": 1}, down=-1)


def test_empty_azs_count_as_azs() -> None:
    # 3-2 plus an empty AZ: losing the empty one is harmless, so 2 of 3 single losses survive
    assert survival_fractions({"a": 3, "b": 2, "c": 0}) == {1: 2 / 3, 2: 1 / 3}
    assert zone_failures_tolerated({"a": 3, "b": 2, "c": 0}) == 0
    assert zone_failures_tolerated({"a": 1, "b": 1, "c": 1, "d": 0}) == 1


def test_ranking_prefers_tolerance_then_fractions_then_evenness_then_name() -> None:
    assert better({"a": 2, "b": 2, "c": 1}, {"a": 3, "b": 2, "c": 0})  # tolerance 1 beats 0
    assert better({"a": 3, "b": 2, "c": 2}, {"a": 3, "b": 3, "c": 1})  # evenness
    assert better({"a": 2, "b": 2, "c": 1}, {"a": 1, "b": 2, "c": 2})  # alphabetically first holds more
    assert not better({"a": 2, "b": 2, "c": 1}, {"a": 2, "b": 2, "c": 1})
    # 4 over 3 AZs: 3-1-0 and 2-1-1 tie on tolerance (0) and on single losses (2/3), but 3-1-0
    # survives losing b and c together: the fractions rank before evenness.
    assert better({"a": 3, "b": 1, "c": 0}, {"a": 2, "b": 1, "c": 1})


# --- properties ----------------------------------------------------------------------------------


@PROPS
@given(st.integers(1, 1000))
def test_quorum_is_the_smallest_majority(n: int) -> None:
    assert quorum(n) == n // 2 + 1 == majority(n)
    assert 2 * quorum(n) > n >= 2 * (quorum(n) - 1)


@PROPS
@given(st.integers(0, 1000))
def test_fault_tolerance_is_what_leaves_a_quorum(n: int) -> None:
    f = fault_tolerance(n)
    assert f == (math.floor((n - 1) / 2) if n else 0)
    if n:
        assert n - f >= quorum(n)
        assert n - (f + 1) < quorum(n)


@PROPS
@given(layouts())
def test_zone_tolerance_matches_brute_force(layout: dict[str, int]) -> None:
    k = zone_failures_tolerated(layout)
    assert k == tolerated(layout)
    assert 0 <= k <= max(len(layout) - 1, 0)
    if sum(layout.values()):
        # the k largest AZs together hold no more managers than the cluster can lose
        top = sorted(layout.values(), reverse=True)
        assert sum(top[:k]) <= fault_tolerance(sum(layout.values()))


@PROPS
@given(layouts(), st.integers(0, 4))
def test_zone_tolerance_with_down_voters_matches_brute_force(layout: dict[str, int], down: int) -> None:
    k = zone_failures_tolerated(layout, down=down)
    assert k == tolerated(layout, down)
    assert k <= zone_failures_tolerated(layout)  # a Down voter never adds tolerance


@PROPS
@given(layouts())
def test_survival_fractions_match_brute_force(layout: dict[str, int]) -> None:
    got = survival_fractions(layout)
    want = fractions(layout)
    assert got.keys() == want.keys() == set(range(1, len(layout)))
    for k in got:
        assert got[k] == pytest.approx(want[k])
        assert 0.0 <= got[k] <= 1.0


@PROPS
@given(layouts())
def test_survival_is_certain_up_to_the_tolerated_losses_and_not_beyond(layout: dict[str, int]) -> None:
    tol = assess(layout)
    k = tol.tolerates_zone_failures
    for j in range(1, k + 1):
        assert tol.zone_failure_survival[j] == 1.0
    if k + 1 in tol.zone_failure_survival:
        assert tol.zone_failure_survival[k + 1] < 1.0
    # losing more AZs never helps
    values = list(tol.zone_failure_survival.values())
    assert values == sorted(values, reverse=True)


@PROPS
@given(layouts())
def test_assess_is_consistent(layout: dict[str, int]) -> None:
    tol = assess(layout)
    assert isinstance(tol, Tolerance)
    n = sum(layout.values())
    assert tol.managers == n
    assert tol.quorum == (quorum(n) if n else 0)
    assert tol.tolerates_node_failures == fault_tolerance(n)
    data = tol.to_json()
    assert data["zone_failure_survival"] == {str(k): v for k, v in tol.zone_failure_survival.items()}
    assert bool(tol.fatal_zones) == (n > 0 and tol.tolerates_zone_failures == 0)


@PROPS
@given(layouts(max_zones=4), layouts(max_zones=4))
def test_ranking_is_a_strict_order(a: dict[str, int], b: dict[str, int]) -> None:
    assert not (better(a, b) and better(b, a))
    if a == b:
        assert layout_key(a) == layout_key(b)
    elif set(a) == set(b):
        assert better(a, b) or better(b, a)  # distinct layouts over the same AZs never tie
    if tolerated(a) > tolerated(b):
        assert better(a, b)
