"""Instance refresh and maximum instance lifetime: replacing instances one at a time, asking the custom
termination policy with their own Cause, launching first or terminating first (the AZ rebalance reuses
the same progress loop; rebalance.py decides when one starts)."""

from __future__ import annotations

from collections import Counter

from autojoin.localcloud.core import EngineCore
from autojoin.localcloud.state import (
    _TERMINATING_STATES,
    NoActiveRefresh,
    RefreshInProgress,
    Replacement,
)


class Replacements(EngineCore):
    """StartInstanceRefresh, CancelInstanceRefresh, lifetime expiry, and the replacement loop."""

    def start_instance_refresh(self, group: str, *, launch_before_terminate: bool = False) -> str:
        """StartInstanceRefresh: replace every instance, one at a time, asking the policy each time."""
        current = self.replacements.get(group)
        if current is not None and current.cause == "INSTANCE_REFRESH" and current.status == "InProgress":
            raise RefreshInProgress(
                "An Instance Refresh is already in progress and blocks the execution of this "
                f"Instance Refresh (group {group})."
            )
        targets = {s.instance.id for s in self.capacity_members(group)}
        rep = Replacement(
            "INSTANCE_REFRESH",
            self._now(),
            targets=targets,
            launch_first=launch_before_terminate,
            refresh_id=self._uuid(),
            total=len(targets),
        )
        self.replacements[group] = rep
        self.refresh_history.setdefault(group, []).insert(0, rep)
        self._schedule_reconcile(group)
        return rep.refresh_id

    def cancel_instance_refresh(self, group: str) -> str:
        rep = self.replacements.get(group)
        if rep is None or rep.cause != "INSTANCE_REFRESH" or rep.status != "InProgress":
            raise NoActiveRefresh(f"No in progress or pending Instance Refresh found for group {group}")
        self._end(group, rep, "Cancelled", "Cancelled by a user request.")
        if rep.surge:
            rep.surge = 0
            self._schedule_reconcile(group)
        return rep.refresh_id

    def _end(self, group: str, rep: Replacement, status: str, reason: str = "") -> None:
        rep.status = status
        rep.reason = reason
        rep.ended = self._now()
        if self.replacements.get(group) is rep:
            del self.replacements[group]

    def _lifetime_expired(self, instance_id: str) -> None:
        t = self.tracked.get(instance_id)
        if t is None or t.final_state:
            return
        rep = self.replacements.get(t.group)
        if rep is None or rep.status != "InProgress":
            rep = Replacement("MAX_INSTANCE_LIFETIME", self._now())
            self.replacements[t.group] = rep
        rep.targets.add(instance_id)
        self._schedule_reconcile(t.group)

    def _in_transition(self, group: str) -> bool:
        return any(
            s.lifecycle_state in {"Pending", "Pending:Wait", "Pending:Proceed"} | _TERMINATING_STATES
            for s in self.group(group).instance_states
        )

    def _progress_replacement(self, group: str, rep: Replacement) -> None:
        if self._in_transition(group):
            return
        members = self.capacity_members(group)
        ids = {s.instance.id for s in members}
        if rep.cause == "REBALANCE":
            done = rep.surge == 0 and self.imbalance(group) <= 1
        else:
            rep.targets &= ids
            done = rep.surge == 0 and not rep.targets
        if done:
            self._end(group, rep, "Successful")
            return
        if rep.launch_first and rep.surge == 0:
            rep.surge = 1
            self._schedule_reconcile(group)  # launches the extra instance (in the smallest AZ)
            return
        # pick what to terminate
        if rep.cause == "REBALANCE":
            counts = Counter({z: 0 for z in self.zones(group) if z not in self.zones_down})
            counts.update(s.availability_zone for s in members if s.availability_zone in counts)
            top = max(counts.values())
            zone_candidates = [
                s for s in members if counts.get(s.availability_zone) == top and not s.protected_from_scale_in
            ]
            eligible = zone_candidates
        else:
            eligible = [s for s in members if s.instance.id in rep.targets and not s.protected_from_scale_in]
        if not eligible:  # what is left is protected from scale-in
            self._end(group, rep, "Successful" if rep.cause != "REBALANCE" else "Failed")
            return
        ordered = self._default_order(eligible)
        zone = ordered[0].availability_zone
        capacity: Counter[str] = Counter({zone: 1})
        suggestions = [s for s in ordered if s.availability_zone == zone]
        chosen = self.choose(group, rep.cause, capacity, suggestions, eligible)
        if not chosen:
            rep.refused_since = rep.refused_since or self._now()
            if (self._now() - rep.refused_since).total_seconds() >= self.refusal_limit_seconds:
                self._end(group, rep, "Failed", "The termination policy refused every instance for an hour.")
                if rep.surge:
                    self._schedule_reconcile(group)  # the surge instance goes by normal scale-in
                return
            self._schedule_reconcile(group, self.policy_retry_seconds)
            return
        rep.refused_since = None
        at = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        why = {
            "INSTANCE_REFRESH": "an instance refresh",
            "MAX_INSTANCE_LIFETIME": "the maximum instance lifetime",
            "REBALANCE": "Availability Zone rebalancing",
        }[rep.cause]
        for iid in chosen:
            rep.targets.discard(iid)
            if rep.surge:
                rep.surge -= 1
            self.begin_terminate(iid, f"At {at} an instance was taken out of service in response to {why}.")
