"""Slow, obviously-correct re-implementations of the quorum maths, to check the real ones against."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence


def majority(n: int) -> int:
    return min(m for m in range(n + 1) if 2 * m > n)


def survives(layout: Mapping[str, int], lost: Sequence[str], down: int = 0) -> bool:
    """``down``: voters besides the layout that are not up (counted in the total, never in what is left)."""
    up = sum(layout.values())
    left = up - sum(layout[z] for z in lost)
    return up > 0 and 2 * left > up + down


def tolerated(layout: Mapping[str, int], down: int = 0) -> int:
    zones = list(layout)
    best = 0
    for k in range(1, len(zones)):
        if all(survives(layout, lost, down) for lost in itertools.combinations(zones, k)):
            best = k
        else:
            break
    return best if sum(layout.values()) else 0


def fractions(layout: Mapping[str, int]) -> dict[int, float]:
    zones = list(layout)
    out = {}
    for k in range(1, len(zones)):
        combos = list(itertools.combinations(zones, k))
        out[k] = sum(survives(layout, c) for c in combos) / len(combos)
    return out


def layouts(n: int, zones: Sequence[str], caps: Mapping[str, int] | None = None) -> Iterator[dict[str, int]]:
    """Every layout of exactly ``n`` managers over ``zones`` (respecting ``caps``)."""
    caps = caps or {}
    ranges = [range(min(n, caps.get(z, n)) + 1) for z in zones]
    for counts in itertools.product(*ranges):
        if sum(counts) == n:
            yield dict(zip(zones, counts, strict=True))


def best_tolerance(n: int, zones: Sequence[str]) -> int:
    if n == 0 or not zones:
        return 0
    return max(tolerated(layout) for layout in layouts(n, zones))
