"""The rule for a world blow that no quorum guard survives (scenario/blows.py): each condition on its own."""

from __future__ import annotations

import pytest

from autojoin.scenario.blows import WINDOW, Removal, Voters, judge, voters_of, zone_safe_possible

STEP_DOWN = Removal(at=1380.0, before=5, after=4)  # chaos-502-4: 2-2-1 -> 2-1-1 on the way to 3


def test_the_outage_that_struck_a_scale_in_through_four_voters_is_unsurvivable() -> None:
    why = judge("az outage us-east-1a", Voters(4, 4), Voters(4, 2), 3, last=STEP_DOWN, now=1380.0)
    assert why == (
        "az outage us-east-1a struck 4 voters 0s after autojoin removed one of 5 on the way down, leaving 2 "
        "of 4 up: no layout of 4 voters over 3 zones survives losing one, and the guard takes the next "
        "removal at its next pass (60s)"
    )


def test_the_window_is_one_guard_pass_from_the_removal() -> None:
    assert WINDOW == 60.0
    late = judge("az outage", Voters(4, 4), Voters(4, 2), 3, last=STEP_DOWN, now=1380.0 + WINDOW)
    assert late is not None and "60s after autojoin removed" in late
    assert judge("az outage", Voters(4, 4), Voters(4, 2), 3, last=STEP_DOWN, now=1380.0 + WINDOW + 1) is None
    assert judge("az outage", Voters(4, 4), Voters(4, 2), 3, last=STEP_DOWN, now=1379.0) is None  # before it


@pytest.mark.parametrize(
    ("before", "after", "why"),
    [
        (Voters(4, 2), Voters(4, 1), "quorum already gone before the blow"),
        (Voters(4, 4), Voters(4, 3), "the blow left a quorum (3 of 4)"),
        (Voters(0, 0), Voters(0, 0), "no voters at all"),
    ],
)
def test_a_blow_that_did_not_cost_quorum_is_not_covered(before: Voters, after: Voters, why: str) -> None:
    assert judge("az outage", before, after, 3, last=STEP_DOWN, now=1380.0) is None, why


def test_quorum_exactly_kept_before_and_exactly_lost_after_is_covered() -> None:
    # 4 voters: quorum 3. Up 3 before (one already Down), 2 after: the blow cost it
    assert judge("crash leader", Voters(4, 3), Voters(4, 2), 3, last=STEP_DOWN, now=1390.0) is not None


@pytest.mark.parametrize(
    ("last", "why"),
    [
        (None, "autojoin removed nothing"),
        (Removal(1380.0, 4, 3), "the last removal did not lead to this count"),
        (Removal(1380.0, 6, 4), "not one removal into it"),
        (Removal(1380.0, 3, 4), "a surge into 4 voters is autojoin's own choice"),
    ],
)
def test_only_autojoin_s_one_step_down_into_the_count_is_covered(last: Removal | None, why: str) -> None:
    assert judge("az outage", Voters(4, 4), Voters(4, 2), 3, last=last, now=1380.0) is None, why


def test_a_count_some_layout_makes_zone_safe_is_not_covered() -> None:
    # 5 voters 2-2-1 losing two is the layout's fault, not the count's; 3 voters losing 2 likewise
    assert judge("az outage", Voters(5, 5), Voters(5, 2), 3, last=Removal(1380.0, 6, 5), now=1380.0) is None
    assert judge("az outage", Voters(3, 3), Voters(3, 1), 3, last=Removal(1380.0, 4, 3), now=1380.0) is None


def test_a_count_no_safer_than_the_one_before_is_not_covered() -> None:
    # over two zones no count is zone-safe: going 3 -> 2 walked from one unsafe count into another
    assert judge("az outage", Voters(2, 2), Voters(2, 1), 2, last=Removal(1380.0, 3, 2), now=1380.0) is None


@pytest.mark.parametrize(
    ("voters", "zones", "safe"),
    [
        (1, 3, False),
        (2, 3, False),
        (3, 3, True),
        (4, 3, False),
        (5, 3, True),
        (6, 3, True),
        (7, 3, True),
        (3, 2, False),
        (5, 2, False),
        (4, 4, True),
        (5, 1, False),
        (0, 3, False),
        (3, 0, False),
    ],
)
def test_zone_safe_counts(voters: int, zones: int, safe: bool) -> None:
    assert zone_safe_possible(voters, zones) is safe


def test_voters_up_are_running_holding_their_node_and_on_the_main_network() -> None:
    def node(**kw: object) -> dict[str, object]:
        return {"voter": True, "machine_up": True, "in_swarm": True, "segment": 0, **kw}

    snapshot = [
        node(),
        node(),
        node(machine_up=False),  # crashed
        node(in_swarm=False),  # its daemon lost the swarm state
        node(segment=1),  # cut off
        node(voter=False),  # a worker or a demoted manager
    ]
    assert voters_of(snapshot) == Voters(total=5, up=2)
    assert voters_of(snapshot, main_segment=1) == Voters(total=5, up=1)
