"""SimClock: simulated time and ordered callbacks; SystemClock: the real one."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autojoin.adapters.sim.clock import DEFAULT_START, SimClock
from autojoin.clock import SystemClock
from autojoin.ports import Clock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_starts_at_the_given_instant_in_utc() -> None:
    assert SimClock().now() == DEFAULT_START
    assert SimClock(T0).now() == T0
    plus2 = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    clock = SimClock(plus2)
    assert clock.now() == T0
    assert clock.now().tzinfo is UTC
    assert isinstance(clock, Clock)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2026, 1, 1))
    clock = SimClock(T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.call_at(datetime(2026, 1, 1), lambda: None)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.advance_to(datetime(2026, 1, 1))


def test_sleep_and_advance_move_time_instantly() -> None:
    clock = SimClock(T0)
    clock.sleep(3600)
    assert clock.now() == T0 + timedelta(hours=1)
    clock.advance(0.5)
    assert clock.now() == T0 + timedelta(hours=1, seconds=0.5)
    clock.advance(0)
    assert clock.now() == T0 + timedelta(hours=1, seconds=0.5)


def test_time_never_moves_back() -> None:
    clock = SimClock(T0)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="forward"):
        clock.advance_to(T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match=">= 0"):
        clock.call_later(-1, lambda: None)
    assert clock.now() == T0


def test_callbacks_run_in_time_order_each_at_its_own_instant() -> None:
    clock = SimClock(T0)
    seen: list[tuple[str, datetime]] = []
    clock.call_later(30, lambda: seen.append(("c", clock.now())))
    clock.call_later(10, lambda: seen.append(("a", clock.now())))
    clock.call_at(T0 + timedelta(seconds=20), lambda: seen.append(("b", clock.now())))
    clock.call_later(99, lambda: seen.append(("late", clock.now())))
    assert clock.advance(30) == 3
    assert seen == [
        ("a", T0 + timedelta(seconds=10)),
        ("b", T0 + timedelta(seconds=20)),
        ("c", T0 + timedelta(seconds=30)),
    ]
    assert clock.now() == T0 + timedelta(seconds=30)
    assert clock.pending() == 1
    assert clock.next_due() == T0 + timedelta(seconds=99)


def test_ties_run_in_insertion_order() -> None:
    clock = SimClock(T0)
    seen: list[int] = []
    for k in range(10):
        clock.call_later(5, functools.partial(seen.append, k))
    clock.advance(5)
    assert seen == list(range(10))


def test_callbacks_may_schedule_more_callbacks_inside_the_window() -> None:
    clock = SimClock(T0)
    seen: list[tuple[str, float]] = []

    def stamp(name: str) -> None:
        seen.append((name, (clock.now() - T0).total_seconds()))

    def first() -> None:
        stamp("first")
        clock.call_later(5, lambda: stamp("child"))  # due at 15: inside the window
        clock.call_later(0, lambda: stamp("now"))  # due at 10, after first
        clock.call_later(100, lambda: stamp("outside"))

    clock.call_later(10, first)
    clock.call_later(12, lambda: stamp("sibling"))
    assert clock.advance(20) == 4
    assert seen == [("first", 10), ("now", 10), ("sibling", 12), ("child", 15)]
    assert clock.next_due() == T0 + timedelta(seconds=110)


def test_a_repeating_timer_like_a_heartbeat() -> None:
    clock = SimClock(T0)
    beats: list[float] = []

    def beat() -> None:
        beats.append((clock.now() - T0).total_seconds())
        if len(beats) < 5:
            clock.call_later(60, beat)

    clock.call_later(60, beat)
    clock.advance(1000)
    assert beats == [60, 120, 180, 240, 300]
    assert clock.next_due() is None


def test_cancel() -> None:
    clock = SimClock(T0)
    ran: list[str] = []
    keep = clock.call_later(10, lambda: ran.append("keep"))
    drop = clock.call_later(5, lambda: ran.append("drop"))
    assert drop.pending
    assert drop.cancel() is True
    assert drop.cancel() is False
    assert drop.cancelled and not drop.pending
    assert clock.pending() == 1
    assert clock.next_due() == T0 + timedelta(seconds=10)  # the cancelled one is skipped
    clock.advance(10)
    assert ran == ["keep"]
    assert keep.done and not keep.pending
    assert keep.cancel() is False  # too late
    assert "done" in repr(keep) and "cancelled" in repr(drop)


def test_a_callback_can_cancel_a_later_one() -> None:
    clock = SimClock(T0)
    ran: list[str] = []
    victim = clock.call_later(20, lambda: ran.append("victim"))
    clock.call_later(10, victim.cancel)
    clock.advance(30)
    assert ran == []
    assert victim.cancelled


def test_call_at_in_the_past_runs_now_without_moving_time_back() -> None:
    clock = SimClock(T0)
    clock.advance(100)
    seen: list[datetime] = []
    handle = clock.call_at(T0, lambda: seen.append(clock.now()))
    assert handle.when == clock.now()
    assert clock.next_due() == clock.now()
    assert clock.run_due() == 1
    assert seen == [T0 + timedelta(seconds=100)]
    assert clock.run_due() == 0


def test_run_due_does_not_move_time() -> None:
    clock = SimClock(T0)
    ran: list[str] = []
    clock.call_later(0, lambda: ran.append("now"))
    clock.call_later(1, lambda: ran.append("later"))
    assert clock.run_due() == 1
    assert ran == ["now"]
    assert clock.now() == T0


def test_a_failing_callback_propagates_and_leaves_the_clock_usable() -> None:
    clock = SimClock(T0)
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    clock.call_later(5, lambda: ran.append("before"))
    failing = clock.call_later(10, boom)
    clock.call_later(15, lambda: ran.append("after"))
    with pytest.raises(RuntimeError, match="boom"):
        clock.advance(60)
    assert clock.now() == T0 + timedelta(seconds=10)  # stopped at the failing callback's instant
    assert failing.done
    assert ran == ["before"]
    clock.advance(50)
    assert ran == ["before", "after"]
    assert clock.now() == T0 + timedelta(seconds=60)


def test_run_all_drains_the_queue_and_detects_runaway_loops() -> None:
    clock = SimClock(T0)
    ran: list[int] = []
    for k in (3, 1, 2):
        clock.call_later(k * 100, functools.partial(ran.append, k))
    assert clock.run_all() == 3
    assert ran == [1, 2, 3]
    assert clock.now() == T0 + timedelta(seconds=300)
    assert clock.next_due() is None

    def forever() -> None:
        clock.call_later(1, forever)

    clock.call_later(1, forever)
    with pytest.raises(RuntimeError, match="rescheduling"):
        clock.run_all(limit=50)


def test_repr_names_time_and_pending_count() -> None:
    clock = SimClock(T0)
    clock.call_later(1, lambda: None)
    assert repr(clock) == f"SimClock(now={T0.isoformat()}, pending=1)"


@given(
    delays=st.lists(st.integers(min_value=0, max_value=1000), max_size=40),
    steps=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=10),
)
def test_property_every_due_callback_runs_once_in_order(delays: list[int], steps: list[int]) -> None:
    clock = SimClock(T0)
    ran: list[tuple[int, int, datetime]] = []

    def record(delay: int, seq: int) -> None:
        ran.append((delay, seq, clock.now()))

    for seq, delay in enumerate(delays):
        clock.call_later(delay, functools.partial(record, delay, seq))
    for step in steps:
        clock.advance(step)
    elapsed = sum(steps)
    expected = sorted((d, s) for s, d in enumerate(delays) if d <= elapsed)
    assert [(d, s) for d, s, _ in ran] == expected
    assert all(at == T0 + timedelta(seconds=d) for d, _, at in ran)
    assert clock.pending() == sum(1 for d in delays if d > elapsed)
    assert clock.now() == T0 + timedelta(seconds=elapsed)


def test_system_clock_is_utc_and_sleeps() -> None:
    clock = SystemClock()
    first = clock.now()
    assert first.tzinfo is UTC
    clock.sleep(0)
    assert clock.now() >= first
    with pytest.raises(ValueError, match="negative"):
        clock.sleep(-1)
