"""Optimal placement and recommendations."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tests.unit.domain.brute_force import best_tolerance, layouts, tolerated

from autojoin.domain.placement import Recommendation, optimal_layout, recommend
from autojoin.domain.quorum import fault_tolerance, layout_key
from autojoin.errors import PlacementError

PROPS = settings(max_examples=200, deadline=None)
NAMES = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"]


# --- worked examples ------------------------------------------------------------------------------


def test_seven_over_three_is_3_2_2_not_3_3_1() -> None:
    assert optimal_layout(7, ["a", "b", "c"]) == {"a": 3, "b": 2, "c": 2}


def test_five_over_three_is_2_2_1_with_the_extra_in_the_first_azs_by_name() -> None:
    assert optimal_layout(5, ["c", "b", "a"]) == {"c": 1, "b": 2, "a": 2}


def test_five_over_two_is_3_2_and_over_five_is_one_each() -> None:
    assert optimal_layout(5, ["a", "b"]) == {"a": 3, "b": 2}
    assert optimal_layout(5, list("abcde")) == dict.fromkeys("abcde", 1)


def test_more_azs_than_managers_leaves_the_last_ones_empty() -> None:
    assert optimal_layout(3, list("abcde")) == {"a": 1, "b": 1, "c": 1, "d": 0, "e": 0}


def test_impaired_azs_get_nothing() -> None:
    assert optimal_layout(5, ["a", "b", "c", "d"], impaired=["a"]) == {"a": 0, "b": 2, "c": 2, "d": 1}
    assert optimal_layout(3, ["a", "b"], impaired=["a", "elsewhere"]) == {"a": 0, "b": 3}


def test_capacity_limits_are_respected() -> None:
    assert optimal_layout(5, ["a", "b", "c"], capacity={"a": 1}) == {"a": 1, "b": 2, "c": 2}
    assert optimal_layout(7, ["a", "b", "c"], capacity={"a": 1, "b": 3}) == {"a": 1, "b": 3, "c": 3}


def test_fifteen_over_six_azs_is_3_3_3_2_2_2_with_the_extra_in_the_first_azs_by_name() -> None:
    # the largest input the hot path sees (its speed is no test's business: no timing here)
    assert optimal_layout(15, NAMES[::-1]) == {
        "us-east-1f": 2,
        "us-east-1e": 2,
        "us-east-1d": 2,
        "us-east-1c": 3,
        "us-east-1b": 3,
        "us-east-1a": 3,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0, "zones": ["a"]}, "need at least 1 manager, got 0"),
        ({"n": 3, "zones": []}, "no AZs given"),
        ({"n": 3, "zones": ["a", "a"]}, "AZ a is listed twice"),
        ({"n": 3, "zones": ["a", ""]}, "an AZ name is empty"),
        (
            {"n": 3, "zones": ["a"], "capacity": {"b": 1}},
            "capacity given for b, which is not one of the AZs (a)",
        ),
        (
            {"n": 3, "zones": ["a", "c"], "capacity": {"b": 1}},
            "capacity given for b, which is not one of the AZs (a, c)",
        ),
        ({"n": 3, "zones": ["a"], "capacity": {"a": -1}}, "capacity of a is negative (-1)"),
        (
            {"n": 7, "zones": ["a", "b", "c"], "capacity": {"a": 3, "b": 2}, "impaired": ["c"]},
            "7 managers do not fit: the usable AZs hold at most 5 (capacity a=3, b=2; impaired c)",
        ),
        (
            {"n": 2, "zones": ["a", "b"], "impaired": ["a", "b"]},
            "2 managers do not fit: the usable AZs hold at most 0 (impaired a, b)",
        ),
        # a zone capped at 0 holds nothing: it is not named among the usable capacities
        (
            {"n": 4, "zones": ["a", "b"], "capacity": {"a": 1, "b": 0}},
            "4 managers do not fit: the usable AZs hold at most 1 (capacity a=1)",
        ),
    ],
)
def test_impossible_or_malformed_requests_say_why(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PlacementError) as err:
        optimal_layout(**kwargs)  # type: ignore[arg-type]
    assert str(err.value) == message


def test_recommend_the_seed_answers() -> None:
    one = recommend(list("abcde"), survive_zones=1)
    assert (one.managers, one.zones, one.layout) == (3, ("a", "b", "c"), {"a": 1, "b": 1, "c": 1})
    assert one.tolerance.tolerates_zone_failures == 1
    two = recommend(list("abcde"), survive_zones=2)
    assert (two.managers, two.zones) == (5, tuple("abcde"))
    both = recommend(list("abcde"), survive_zones=1, survive_nodes=2)
    assert (both.managers, both.layout) == (5, {"a": 2, "b": 2, "c": 1})
    many = recommend(list("abcde"), survive_zones=2, survive_nodes=3)
    assert (many.managers, many.layout) == (9, {"a": 2, "b": 2, "c": 2, "d": 2, "e": 1})


def test_recommend_without_targets_is_one_manager() -> None:
    rec = recommend(["a", "b"])
    assert isinstance(rec, Recommendation)
    assert (rec.managers, rec.zones, rec.layout) == (1, ("a",), {"a": 1})


def test_recommend_refuses_too_few_azs_with_the_reason() -> None:
    with pytest.raises(PlacementError, match="surviving 2 AZ losses needs at least 5 AZs; 3 given"):
        recommend(["a", "b", "c"], survive_zones=2)
    with pytest.raises(PlacementError, match="surviving 1 AZ loss needs at least 3 AZs; 2 given"):
        recommend(["a", "b"], survive_zones=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"survive_zones": -1}, "AZ losses to survive cannot be negative"),
        ({"survive_nodes": -1}, "manager failures to survive cannot be negative"),
    ],
)
def test_recommend_refuses_negative_targets(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(PlacementError, match=message):
        recommend(["a", "b", "c"], **kwargs)  # type: ignore[arg-type]


def test_recommend_refuses_bad_zone_lists() -> None:
    with pytest.raises(PlacementError, match="no AZs"):
        recommend([], survive_zones=0)
    with pytest.raises(PlacementError, match="twice"):
        recommend(["a", "a", "b"], survive_zones=1)


# --- properties ----------------------------------------------------------------------------------

zone_lists = st.integers(1, 4).map(lambda m: NAMES[:m])


@PROPS
@given(st.integers(1, 7), zone_lists, st.randoms(use_true_random=False))
def test_optimal_layout_beats_or_ties_every_other_layout(
    n: int, zones: list[str], rnd: random.Random
) -> None:
    shuffled = list(zones)
    rnd.shuffle(shuffled)
    best = optimal_layout(n, shuffled)
    assert set(best) == set(zones)
    assert sum(best.values()) == n
    every = list(layouts(n, zones))
    assert best == min(every, key=layout_key)
    for other in every:
        assert layout_key(best) <= layout_key(other)
        assert tolerated(best) >= tolerated(other)


@PROPS
@given(
    st.integers(1, 7),
    zone_lists,
    st.lists(st.integers(0, 4), min_size=4, max_size=4),
    st.sets(st.sampled_from(NAMES[:4])),
)
def test_optimal_layout_with_limits_is_the_best_that_fits(
    n: int, zones: list[str], caps_list: list[int], impaired: set[str]
) -> None:
    caps = dict(zip(zones, caps_list, strict=False))
    effective = {z: 0 if z in impaired else caps[z] for z in zones}
    fitting = list(layouts(n, zones, effective))
    if not fitting:
        with pytest.raises(PlacementError, match="do not fit"):
            optimal_layout(n, zones, capacity=caps, impaired=impaired)
        return
    best = optimal_layout(n, zones, capacity=caps, impaired=impaired)
    assert best == min(fitting, key=layout_key)
    assert all(best[z] <= effective[z] for z in zones)


@PROPS
@given(st.integers(0, 2), st.integers(0, 2), st.integers(1, 5), st.booleans())
def test_recommendation_is_the_smallest_that_meets_the_target(k: int, f: int, m: int, even: bool) -> None:
    zones = NAMES[:m]
    assume(m >= 2 * k + 1)
    rec = recommend(zones, survive_zones=k, survive_nodes=f, allow_even=even)
    assert rec.tolerance.tolerates_zone_failures >= k
    assert fault_tolerance(rec.managers) >= f
    assert even or rec.managers % 2 == 1
    assert rec.zones == tuple(zones[: len(rec.zones)])
    assert set(rec.layout) == set(rec.zones)
    assert sum(rec.layout.values()) == rec.managers
    # nothing smaller works: no smaller count over all the AZs, and no fewer AZs with this count
    for n in range(1, rec.managers):
        assert fault_tolerance(n) < f or best_tolerance(n, zones) < k
    assert len(rec.zones) == 1 or best_tolerance(rec.managers, zones[: len(rec.zones) - 1]) < k
