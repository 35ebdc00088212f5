"""Quorum and availability-zone tolerance maths.

A *layout* maps AZ name -> number of managers in that AZ. Every key is an AZ, including AZs with zero
managers: an empty AZ can still be "lost", and it matters for the survival fractions.

A cluster of N managers keeps working while a majority (``quorum(N)``) of *all* N managers is up, so it
survives the loss of a set of AZs exactly when the managers in those AZs number at most
``fault_tolerance(N)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from math import comb


def quorum(n: int) -> int:
    """Managers that must be up for a cluster of ``n`` managers to work: floor(n/2) + 1."""
    if n < 1:
        raise ValueError(f"quorum needs at least 1 manager, got {n}")
    return n // 2 + 1


def fault_tolerance(n: int) -> int:
    """Manager failures a cluster of ``n`` managers survives: floor((n-1)/2); 0 for an empty cluster."""
    if n < 0:
        raise ValueError(f"a manager count cannot be negative, got {n}")
    return (n - 1) // 2 if n > 0 else 0


def _counts(layout: Mapping[str, int]) -> tuple[int, ...]:
    """The layout's counts, largest first (the only thing the tolerance maths depends on)."""
    for az, count in layout.items():
        if count < 0:
            raise ValueError(f"AZ {az} has a negative manager count ({count})")
    return tuple(sorted(layout.values(), reverse=True))


@lru_cache(maxsize=4096)
def _tolerated(counts: tuple[int, ...], down: int = 0) -> int:
    total = sum(counts)
    if total == 0:
        return 0
    budget = fault_tolerance(total + down) - down  # the down voters are lost already
    lost = 0
    k = 0
    for c in counts[: len(counts) - 1]:  # never more than all-but-one AZ
        lost += c
        if lost > budget:
            break
        k += 1
    return k


@lru_cache(maxsize=4096)
def _survivals(counts: tuple[int, ...]) -> tuple[Fraction, ...]:
    """For k = 1..len-1: the exact fraction of k-AZ losses that leave a quorum."""
    m = len(counts)
    total = sum(counts)
    if m < 2:
        return ()
    if total == 0:
        return tuple(Fraction(0) for _ in range(1, m))
    budget = fault_tolerance(total)
    # ways[k][s]: number of k-subsets of AZs holding exactly s managers (s <= budget only)
    ways = [[0] * (budget + 1) for _ in range(m + 1)]
    ways[0][0] = 1
    for c in counts:
        for k in range(m - 1, -1, -1):
            row, up = ways[k], ways[k + 1]
            for s in range(budget - c, -1, -1):
                if row[s]:
                    up[s + c] += row[s]
    return tuple(Fraction(sum(ways[k]), comb(m, k)) for k in range(1, m))


def zone_failures_tolerated(layout: Mapping[str, int], *, down: int = 0) -> int:
    """Worst case: the largest k such that losing ANY k AZs leaves a majority of all managers.

    ``down``: voters besides ``layout`` that are not up (a crashed manager not yet removed): they count in
    Raft's N until they are removed and keep no quorum, so the AZs lost may hold ``down`` fewer managers.
    Capped at ``len(layout) - 1`` (losing every AZ is never survivable); 0 without managers.
    """
    if down < 0:
        raise ValueError(f"a count of down voters cannot be negative, got {down}")
    return _tolerated(_counts(layout), down)


def survival_fractions(layout: Mapping[str, int]) -> dict[int, float]:
    """For k = 1..len(layout)-1: the share of the C(len, k) ways to lose k AZs that keep a quorum."""
    return {k: float(f) for k, f in enumerate(_survivals(_counts(layout)), start=1)}


@dataclass(frozen=True)
class Tolerance:
    """What a layout of managers survives."""

    managers: int
    layout: dict[str, int]
    quorum: int
    tolerates_node_failures: int
    tolerates_zone_failures: int
    zone_failure_survival: dict[int, float]

    def to_json(self) -> dict[str, object]:
        return {
            "managers": self.managers,
            "layout": dict(self.layout),
            "quorum": self.quorum,
            "tolerates_node_failures": self.tolerates_node_failures,
            "tolerates_zone_failures": self.tolerates_zone_failures,
            "zone_failure_survival": {str(k): v for k, v in self.zone_failure_survival.items()},
        }

    @property
    def fatal_zones(self) -> tuple[str, ...]:
        """The AZs whose loss alone loses quorum."""
        if self.managers == 0:
            return ()
        budget = fault_tolerance(self.managers)
        return tuple(az for az, c in self.layout.items() if c > budget)


def assess(layout: Mapping[str, int]) -> Tolerance:
    """The tolerance of ``layout`` (AZ -> managers; zero counts are AZs too)."""
    counts = _counts(layout)
    total = sum(counts)
    return Tolerance(
        managers=total,
        layout=dict(sorted(layout.items())),
        quorum=quorum(total) if total else 0,
        tolerates_node_failures=fault_tolerance(total),
        tolerates_zone_failures=_tolerated(counts),
        zone_failure_survival=survival_fractions(layout),
    )


LayoutKey = tuple[int, tuple[Fraction, ...], tuple[int, ...], tuple[tuple[str, int], ...]]


def counts_key(counts: tuple[int, ...]) -> tuple[int, tuple[Fraction, ...], tuple[int, ...]]:
    """The name-free part of :func:`layout_key` for counts sorted largest first (smaller is better)."""
    return (-_tolerated(counts), tuple(-f for f in _survivals(counts)), counts)


def layout_key(layout: Mapping[str, int]) -> LayoutKey:
    """Sort key ranking layouts: ``min(layouts, key=layout_key)`` is the best.

    1. more AZ losses survived in the worst case;
    2. higher survival fractions, compared for k = 1, 2, ...;
    3. evenness: counts sorted largest first, lexicographically smallest (3-2-2 before 3-3-1);
    4. deterministic by AZ name: the alphabetically first AZ holds more.
    """
    counts = _counts(layout)
    by_name = tuple((az, -layout[az]) for az in sorted(layout))
    return (*counts_key(counts), by_name)


def better(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """True when layout ``a`` ranks strictly before layout ``b`` (see :func:`layout_key`)."""
    return layout_key(a) < layout_key(b)
