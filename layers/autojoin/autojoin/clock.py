"""The real clock (production and the real-swarm lab). Simulations use ``adapters.sim.clock.SimClock``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from autojoin.ports import Clock


class SystemClock(Clock):
    """Wall-clock time in UTC; ``sleep`` really sleeps."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds} s)")
        time.sleep(seconds)
