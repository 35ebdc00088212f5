"""Auto Scaling's own AZ rebalancing.

User Guide, "Control which Auto Scaling instances terminate during scale in", section "Availability Zone
rebalancing": when the distribution across the group's enabled AZs is out of balance (here: two AZs
differ by more than one instance) — after instances were terminated with a decrement or detached, after
the AZs changed, after an AZ recovered — Auto Scaling launches in the AZ with the fewest instances
before it terminates elsewhere, and may exceed the maximum size by 10 % or one instance, whichever is
greater, while it does. "Create a custom termination policy with Lambda" (Considerations): with a
custom policy it first invokes the function (Cause REBALANCE) to see whether instances are ready to be
terminated; only then it launches; when the launch finishes, current capacity is above desired and a
scale-in (Cause SCALE_IN) takes the surplus from the largest AZ. "Suspend and resume Amazon EC2 Auto
Scaling processes": no rebalancing while AZRebalance or Launch is suspended; with Terminate suspended
the launches happen and the group stays above desired (up to the margin) until Terminate resumes.

Rebalancing is gradual: the capacity loop checks the balance once the group is at desired capacity and
nothing is in transition, and starts a rebalance ``rebalance_delay_seconds`` later (so a policy that
keeps unbalancing the group cannot spin in zero simulated time). ``rebalance()`` starts one at once.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from autojoin.localcloud.core import EngineCore
from autojoin.localcloud.state import Replacement


class Rebalancing(EngineCore):
    """AZ imbalance, when a rebalance starts, and how it proceeds."""

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

    def rebalance_margin(self, g: Any) -> int:
        """How far above MaxSize a rebalance may go: 10 % or one instance, whichever is greater."""
        return max(1, math.ceil(0.1 * (g.max_size or 0)))

    def _rebalance_candidates(self, group: str) -> list[Any]:
        """Unprotected members of the largest (healthy) AZs."""
        counts = Counter({z: 0 for z in self.zones(group) if z not in self.zones_down})
        members = self.capacity_members(group)
        counts.update(s.availability_zone for s in members if s.availability_zone in counts)
        if not counts:
            return []
        top = max(counts.values())
        return [s for s in members if counts.get(s.availability_zone) == top and not self.protected(s)]

    def _may_rebalance(self, group: str) -> bool:
        g = self.group(group)
        return (
            not self.suspended(group, "AZRebalance")
            and not self.suspended(group, "Launch")
            and self.imbalance(group) > 1
            and len(self.capacity_members(group)) < (g.max_size or 0) + self.rebalance_margin(g)
            and bool(self._rebalance_candidates(group))
        )

    def check_balance(self, group: str) -> None:
        """Called by the capacity loop when no replacement runs: schedule a rebalance if one is due
        (after a terminate with decrement, a scale-in, an AZ recovery or a resumed process; a state
        seeded out of balance stays as it is until one of those happens)."""
        if group not in self.balance_due:
            return
        g = self.group(group)
        if len(self.capacity_members(group)) != (g.desired_capacity or 0) or self._in_transition(group):
            return
        if not self._may_rebalance(group):
            self.balance_due.discard(group)
            return
        pending = self._rebalance_at.get(group)
        if pending is not None and pending.pending:
            return

        def due() -> None:
            if group in self.groups and group not in self.replacements and self._may_rebalance(group):
                self.balance_due.discard(group)
                self.rebalance(group)

        self._rebalance_at[group] = self.clock.call_later(self.rebalance_delay_seconds, due)

    def _progress_rebalance(self, group: str, rep: Replacement) -> None:
        if self._in_transition(group):
            return
        if rep.phase == "launched":  # the extra instance is in: a scale-in takes the surplus
            rep.phase = ""
            rep.surge = 0
            self._schedule_reconcile(group)
            return
        g = self.group(group)
        if len(self.capacity_members(group)) > (g.desired_capacity or 0):
            return  # the scale-in of the last round has not happened (Terminate suspended)
        if not self._may_rebalance(group):
            self._end(group, rep, "Successful" if self.imbalance(group) <= 1 else "Failed")
            if self.imbalance(group) > 1 and not self.suspended(group, "AZRebalance"):
                self.balance_due.add(group)  # Launch or Terminate suspended: try again once resumed
            return
        if self.groups[group].policy_function is not None:
            eligible = self._rebalance_candidates(group)
            zones = sorted({s.availability_zone for s in eligible})
            zone = zones[0] if len(zones) == 1 else self.rng.choice(zones)
            suggestions = [
                s
                for z in zones
                for s in self._default_order([e for e in eligible if e.availability_zone == z])
            ]
            ready = self.choose(group, "REBALANCE", Counter({zone: 1}), suggestions, eligible)
            if not ready:  # nothing ready to terminate: no rebalancing launch; asked again shortly
                self._schedule_reconcile(group, self.policy_retry_seconds)
                return
        rep.surge = 1
        rep.phase = "launched"
        self._schedule_reconcile(group)  # launches the extra instance (in the smallest AZ)
