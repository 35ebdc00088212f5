"""Where managers should live: the optimal layout of N managers over AZs, and recommendations."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from autojoin.domain.quorum import Tolerance, assess, counts_key, fault_tolerance, zone_failures_tolerated
from autojoin.errors import PlacementError


def _check_zones(zones: Sequence[str]) -> None:
    if not zones:
        raise PlacementError("no AZs given")
    seen: set[str] = set()
    for z in zones:
        if not z:
            raise PlacementError("an AZ name is empty")
        if z in seen:
            raise PlacementError(f"AZ {z} is listed twice")
        seen.add(z)


def _partitions(n: int, parts: int, largest: int) -> Iterator[tuple[int, ...]]:
    """Every way to write ``n`` as ``parts`` counts (zeros allowed), largest first, each <= ``largest``."""
    if parts == 0:
        if n == 0:
            yield ()
        return
    # the first count is the largest: at least ceil(n / parts), at most min(n, largest)
    for first in range(min(n, largest), -(-n // parts) - 1, -1):
        for rest in _partitions(n - first, parts - 1, first):
            yield (first, *rest)


def _fits(counts: Sequence[int], caps: Sequence[int]) -> bool:
    """Can these counts be given to AZs with these capacities? (Both sorted largest first.)"""
    return all(c <= cap for c, cap in zip(counts, caps, strict=True))


@lru_cache(maxsize=1024)
def _optimal(n: int, zones: tuple[str, ...], caps: tuple[int, ...]) -> tuple[tuple[str, int], ...] | None:
    """The best layout as (az, count) pairs in name order; ``caps`` is aligned with ``zones``."""
    caps_sorted = sorted(caps, reverse=True)
    best: tuple[int, ...] | None = None
    for counts in _partitions(n, len(zones), caps_sorted[0]):
        if _fits(counts, caps_sorted) and (best is None or counts_key(counts) < counts_key(best)):
            best = counts
    if best is None:
        return None
    # hand the counts out in AZ-name order, each AZ taking the largest count that keeps the rest placeable
    cap_of = dict(zip(zones, caps, strict=True))
    order = sorted(zones)
    remaining = list(best)
    out: list[tuple[str, int]] = []
    for i, az in enumerate(order):
        rest_caps = sorted((cap_of[z] for z in order[i + 1 :]), reverse=True)
        for j, value in enumerate(remaining):  # remaining is sorted largest first
            if value <= cap_of[az] and _fits(remaining[:j] + remaining[j + 1 :], rest_caps):
                out.append((az, value))
                del remaining[j]
                break
    return tuple(out)


def optimal_layout(
    n: int,
    zones: Sequence[str],
    *,
    capacity: Mapping[str, int] | None = None,
    impaired: Collection[str] = (),
) -> dict[str, int]:
    """The best layout of ``n`` managers over ``zones`` (see :func:`autojoin.domain.quorum.layout_key`).

    Every zone appears in the result (0 allowed). Impaired zones get 0; ``capacity`` caps a zone's count.
    Raises PlacementError when the request is malformed or the managers do not fit.
    """
    if n < 1:
        raise PlacementError(f"need at least 1 manager, got {n}")
    _check_zones(zones)
    capacity = dict(capacity or {})
    for az, cap in capacity.items():
        if az not in zones:
            raise PlacementError(f"capacity given for {az}, which is not one of the AZs ({', '.join(zones)})")
        if cap < 0:
            raise PlacementError(f"capacity of {az} is negative ({cap})")
    bad = set(impaired)
    caps = tuple(0 if z in bad else min(capacity.get(z, n), n) for z in zones)
    result = _optimal(n, tuple(zones), caps)
    if result is None:
        usable = ", ".join(f"{z}={c}" for z, c in zip(zones, caps, strict=True) if c and z in capacity)
        limits = [f"capacity {usable}"] if usable else []
        down = [z for z in zones if z in bad]
        if down:
            limits.append(f"impaired {', '.join(down)}")
        raise PlacementError(
            f"{n} managers do not fit: the usable AZs hold at most {sum(caps)} ({'; '.join(limits)})"
        )
    return dict(result)


@dataclass(frozen=True)
class Recommendation:
    """The smallest cluster that meets a survival target."""

    managers: int
    zones: tuple[str, ...]
    layout: dict[str, int]
    tolerance: Tolerance


def recommend(
    zones: Sequence[str],
    *,
    survive_zones: int | None = None,
    survive_nodes: int | None = None,
    allow_even: bool = False,
) -> Recommendation:
    """The smallest manager count, then the fewest of ``zones`` (taken in the order given), that survive
    any ``survive_zones`` AZ losses and any ``survive_nodes`` manager failures.

    Manager counts are odd unless ``allow_even``. Raises PlacementError with the reason when impossible.
    """
    _check_zones(zones)
    k = survive_zones or 0
    f = survive_nodes or 0
    if k < 0:
        raise PlacementError(f"the number of AZ losses to survive cannot be negative ({k})")
    if f < 0:
        raise PlacementError(f"the number of manager failures to survive cannot be negative ({f})")
    if len(zones) < 2 * k + 1:
        losses = f"{k} AZ loss{'es' if k != 1 else ''}"
        raise PlacementError(f"surviving {losses} needs at least {2 * k + 1} AZs; {len(zones)} given")
    # (2k+1) AZs holding 2f+1 managers each always works, so the search ends by then
    limit = (2 * k + 1) * (2 * f + 1)
    n = max(1, 2 * f + 1)
    while n <= limit:
        if (allow_even or n % 2 == 1) and fault_tolerance(n) >= f:
            for used in range(max(1, 2 * k + 1), len(zones) + 1):
                layout = optimal_layout(n, zones[:used])
                if zone_failures_tolerated(layout) >= k:
                    return Recommendation(
                        managers=n, zones=tuple(zones[:used]), layout=layout, tolerance=assess(layout)
                    )
        n += 1
    raise AssertionError(f"{limit} managers over {2 * k + 1} AZs always meet the target")  # pragma: no cover
