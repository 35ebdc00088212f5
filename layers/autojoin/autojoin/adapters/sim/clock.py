"""A simulated clock: time moves only when told to, and scheduled callbacks run in time order.

``SimClock`` is the one source of time for the local cloud and the in-memory swarm::

    clock = SimClock()                         # 2026-01-01T00:00:00Z unless told otherwise
    handle = clock.call_later(3600, on_timeout)  # a lifecycle hook's heartbeat timer
    clock.advance(10)                          # 10 simulated seconds, no wall time
    handle.cancel()                            # a heartbeat arrived: the old timer is void

Rules (each one tested):

- ``now()`` is a timezone-aware UTC datetime; it never goes backwards.
- ``advance(s)`` / ``sleep(s)`` move time forward by ``s`` seconds. Every callback due on the way runs
  at its own instant (``now()`` inside a callback is its scheduled time), earliest first; callbacks due at
  the same instant run in the order they were scheduled.
- A callback may schedule more callbacks (or cancel others): one due before the end of the current
  ``advance`` runs within it; one scheduled for ``now()`` or earlier runs before time moves on.
- ``call_at`` with an instant in the past runs the callback at the current time (time is never moved back).
- If a callback raises, the exception propagates out of ``advance``/``run_due``; the clock then stands at
  that callback's instant, the failed callback is gone, and everything else stays scheduled, so the
  caller can carry on with another ``advance``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from autojoin.ports import Clock

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


class Scheduled:
    """A handle on one scheduled callback: ``cancel()`` it, or read when it is due."""

    __slots__ = ("_cancelled", "_done", "fn", "seq", "when")

    def __init__(self, when: datetime, seq: int, fn: Callable[[], object]) -> None:
        self.when = when
        self.seq = seq
        self.fn = fn
        self._cancelled = False
        self._done = False

    def cancel(self) -> bool:
        """Cancel the callback; False if it already ran or was already cancelled."""
        if self._cancelled or self._done:
            return False
        self._cancelled = True
        return True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def done(self) -> bool:
        """The callback has run (or started running and raised)."""
        return self._done

    @property
    def pending(self) -> bool:
        return not (self._cancelled or self._done)

    def __lt__(self, other: Scheduled) -> bool:  # heap order: time, then insertion order
        return (self.when, self.seq) < (other.when, other.seq)

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "done" if self._done else "pending"
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return f"Scheduled({self.when.isoformat()}, #{self.seq}, {name}, {state})"


class SimClock(Clock):
    """A deterministic clock for simulations and tests (see the module docstring for its rules)."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("SimClock needs a timezone-aware start instant")
        self._now = start.astimezone(UTC)
        self._queue: list[Scheduled] = []
        self._seq = itertools.count()

    # --- the Clock port ----------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        """Simulated sleep: the same as ``advance`` (callbacks due meanwhile run)."""
        self.advance(seconds)

    # --- scheduling --------------------------------------------------------------------------------

    def call_at(self, when: datetime, fn: Callable[[], object]) -> Scheduled:
        """Run ``fn()`` at ``when`` (an aware datetime); in the past means "as soon as time is touched"."""
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("call_at needs a timezone-aware instant")
        item = Scheduled(max(when.astimezone(UTC), self._now), next(self._seq), fn)
        heapq.heappush(self._queue, item)
        return item

    def call_later(self, delay: float, fn: Callable[[], object]) -> Scheduled:
        """Run ``fn()`` ``delay`` seconds from now (``delay`` >= 0)."""
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        return self.call_at(self._now + timedelta(seconds=delay), fn)

    def next_due(self) -> datetime | None:
        """When the earliest pending callback is due, or None if nothing is scheduled."""
        self._drop_cancelled()
        return self._queue[0].when if self._queue else None

    def pending(self) -> int:
        """How many callbacks are still scheduled."""
        return sum(1 for s in self._queue if s.pending)

    # --- moving time -------------------------------------------------------------------------------

    def run_due(self) -> int:
        """Run every callback due at or before ``now()`` (time does not move). Returns how many ran."""
        return self._run_until(self._now)

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds`` (>= 0), running what falls due. Returns how many ran."""
        if seconds < 0:
            raise ValueError(f"time only moves forward, got {seconds} s")
        return self.advance_to(self._now + timedelta(seconds=seconds))

    def advance_to(self, when: datetime) -> int:
        """Move time forward to ``when`` (not before ``now()``), running what falls due."""
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("advance_to needs a timezone-aware instant")
        target = when.astimezone(UTC)
        if target < self._now:
            raise ValueError(f"time only moves forward: {target.isoformat()} < {self._now.isoformat()}")
        ran = self._run_until(target)
        self._now = target
        return ran

    def run_all(self, *, limit: int = 100_000) -> int:
        """Advance until nothing is scheduled; raises RuntimeError after ``limit`` callbacks (a loop)."""
        ran = 0
        while (due := self.next_due()) is not None:
            if ran >= limit:
                raise RuntimeError(f"more than {limit} callbacks: a callback keeps rescheduling itself")
            ran += self.advance_to(due)
        return ran

    def _run_until(self, target: datetime) -> int:
        ran = 0
        while True:
            self._drop_cancelled()
            if not self._queue or self._queue[0].when > target:
                return ran
            item = heapq.heappop(self._queue)
            self._now = max(self._now, item.when)
            item._done = True
            ran += 1
            item.fn()

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0].cancelled:
            heapq.heappop(self._queue)

    def __repr__(self) -> str:
        return f"SimClock(now={self._now.isoformat()}, pending={self.pending()})"
