"""Render helpers that the commands cannot reach with valid input."""

from __future__ import annotations

from autojoin.cli.render import verdict_line
from autojoin.domain.quorum import assess
from autojoin.domain.verdict import best_zone_tolerance


def test_verdict_for_no_managers() -> None:
    assert verdict_line(assess({"a": 0, "b": 0})) == "no managers: there is no cluster to keep"


def test_verdict_names_every_fatal_az() -> None:
    # 2-2 over two AZs: each AZ alone holds more than the one failure 4 managers survive
    assert verdict_line(assess({"a": 2, "b": 2})) == "loses quorum if a or b goes"
    assert verdict_line(assess({"a": 1, "b": 1, "c": 1})) == "survives any 1 AZ loss"


def test_best_zone_tolerance_without_managers_or_zones() -> None:
    assert best_zone_tolerance(0, ["a", "b", "c"]) == 0
    assert best_zone_tolerance(3, []) == 0
    assert best_zone_tolerance(5, ["a", "b", "c", "d", "e"]) == 2
