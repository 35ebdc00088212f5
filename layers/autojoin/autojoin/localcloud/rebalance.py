"""Auto Scaling's own AZ rebalancing: when the group's zones differ by more than one instance, launch in
the smallest zone first, then terminate in the largest (progress in replacement.py)."""

from __future__ import annotations

from collections import Counter

from autojoin.localcloud.core import EngineCore
from autojoin.localcloud.state import Replacement


class Rebalancing(EngineCore):
    """AZ imbalance and starting a rebalance."""

    def imbalance(self, group: str) -> int:
        zones = [z for z in self.zones(group) if z not in self.zones_down]
        if not zones:
            return 0
        counts = Counter({z: 0 for z in zones})
        counts.update(
            s.availability_zone for s in self.capacity_members(group) if s.availability_zone in counts
        )
        return max(counts.values()) - min(counts.values())

    def rebalance(self, group: str) -> None:
        """AZ rebalancing: launch in the smallest AZ first, then terminate in the largest."""
        self.replacements[group] = Replacement("REBALANCE", self._now(), launch_first=True)
        self._schedule_reconcile(group)
