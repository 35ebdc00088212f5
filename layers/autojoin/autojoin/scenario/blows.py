"""World blows that no quorum guard could survive: an AZ outage (or a crash) that strikes while a scale-in is
passing through a voter count that no layout makes safe against losing a zone.

Raft changes its voters one at a time, so 5 managers over three AZs go to 3 through 4, and no layout of 4
voters over three zones survives a zone loss (the zone holding two leaves 2 of 4). A guard that removes one
manager per pass is in that state from one removal until the next pass takes the next. A blow that strikes
a zone of the transit layout in that window loses quorum whatever the guard does: the removal before it
was safe (the layout it left survived one zone), and nothing could have seen the blow coming.

The scenario runner asks :func:`judge` about every ``az_outage`` and ``crash`` step, with the simulation's
hidden truth (which voters are up, from ``SimSwarm.snapshot()``), before and after the blow. A chaos
timeline whose only problems come at or after such a blow is reported as *unsurvivable*, not failed
(scenario/chaos.py). The rule is narrow on purpose: the blow itself must cost quorum, the voter count must
be one that no layout makes zone-safe, the count just before must have been zone-safe, and autojoin's
removal into it must be at most one guard pass (:data:`WINDOW`) old. A guard that lingered in a transit
layout, or walked into it by itself (a surge, a move), gets no such pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from math import ceil
from typing import Any

from autojoin.domain.quorum import quorum

WINDOW = 60.0  # simulated seconds: the guard's pass (OnTerminateFunction's GuardSchedule, rate(1 minute))


@dataclass(frozen=True)
class Voters:
    """Raft's voters as the simulation knows them: how many, and how many are really up and connected."""

    total: int
    up: int


@dataclass(frozen=True)
class Removal:
    """A function run that left fewer voters than it found."""

    at: float  # simulated seconds when the run began (its removal came before any later step)
    before: int
    after: int


def voters_of(snapshot: Iterable[Mapping[str, Any]], main_segment: int = 0) -> Voters:
    """Voters and the ones up (machine running, still holding its node, on the main network) from
    ``SimSwarm.snapshot()``."""
    voters = [n for n in snapshot if n.get("voter")]
    up = [n for n in voters if n.get("machine_up") and n.get("in_swarm") and n.get("segment") == main_segment]
    return Voters(len(voters), len(up))


def zone_safe_possible(voters: int, zones: int) -> bool:
    """Some layout of ``voters`` over ``zones`` zones keeps a majority after losing any one zone (the
    balanced one: the largest zone holds ceil(voters / zones))."""
    if voters < 1 or zones < 1:
        return False
    return voters - ceil(voters / zones) >= quorum(voters)


def judge(
    what: str, before: Voters, after: Voters, zones: int, *, last: Removal | None, now: float
) -> str | None:
    """Why the blow ``what`` at ``now`` was unsurvivable, or None when the rule does not cover it."""
    n = before.total
    if n < 1 or before.up < quorum(n) or after.up >= quorum(n):
        return None  # quorum was already gone, or the blow did not cost it
    if zone_safe_possible(n, zones) or not zone_safe_possible(n + 1, zones):
        return None  # a layout of n would have survived, or n + 1 was no safer
    if last is None or last.before != n + 1 or last.after != n or not 0 <= now - last.at <= WINDOW:
        return None  # not autojoin's removal into the transit count within one pass
    return (
        f"{what} struck {n} voters {now - last.at:.0f}s after autojoin removed one of {n + 1} on the way "
        f"down, leaving {after.up} of {n} up: no layout of {n} voters over {zones} zones survives losing "
        f"one, and the guard takes the next removal at its next pass ({WINDOW:.0f}s)"
    )
