"""Instance refresh and maximum instance lifetime: replacing instances, asking the custom termination
policy with their own Cause, launching first or terminating first (the AZ rebalance has its own loop in
rebalance.py).

The rules, from the Amazon EC2 Auto Scaling User Guide and API Reference:

- "Instance refresh" / API Reference "RefreshPreferences": ``ScaleInProtectedInstances`` Refresh
  (replace protected instances too), Ignore (skip them), Wait (default: wait for protection to be
  removed; after one hour the refresh fails); ``SkipMatching`` (instances already on the desired launch
  template and version are not replaced); ``MinHealthyPercentage`` (default 90: how much of desired
  capacity must stay in service, which sets how many are replaced at once when terminating first);
  ``MaxHealthyPercentage`` above 100 launches before it terminates; ``CheckpointPercentages`` and
  ``CheckpointDelay`` (default 3600 s) pause the refresh. "Create a custom termination policy with
  Lambda" (Considerations): refusals are retried for an hour, then the refresh fails.
- "Amazon EC2 Auto Scaling event reference": Instance Refresh Started, Checkpoint Reached, Succeeded,
  Failed and Cancelled events.
- "Replace Auto Scaling instances based on maximum instance lifetime": instances are replaced one at a
  time; a protected instance waits until its protection is removed; with a custom policy Auto Scaling
  "keeps trying to terminate the instance that is identified as exceeding its maximum lifetime".
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from typing import Any

from autojoin.localcloud.core import EngineCore
from autojoin.localcloud.state import (
    _TERMINATING_STATES,
    NoActiveRefresh,
    RefreshInProgress,
    Replacement,
)

_REFRESH_EVENT = {
    "Successful": "EC2 Auto Scaling Instance Refresh Succeeded",
    "Failed": "EC2 Auto Scaling Instance Refresh Failed",
    "Cancelled": "EC2 Auto Scaling Instance Refresh Cancelled",
}


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class Replacements(EngineCore):
    """StartInstanceRefresh, CancelInstanceRefresh, lifetime expiry, and the replacement loop."""

    def start_instance_refresh(
        self,
        group: str,
        *,
        launch_before_terminate: bool = False,
        preferences: dict[str, Any] | None = None,
    ) -> str:
        """StartInstanceRefresh: replace the group's instances, asking the policy each time."""
        current = self.replacements.get(group)
        if current is not None and current.cause == "INSTANCE_REFRESH" and current.status == "InProgress":
            raise RefreshInProgress(
                "An Instance Refresh is already in progress and blocks the execution of this "
                f"Instance Refresh (group {group})."
            )
        prefs = dict(preferences or {})
        max_healthy = int(prefs.get("MaxHealthyPercentage", 110 if launch_before_terminate else 100))
        prefs = {
            "MinHealthyPercentage": int(prefs.get("MinHealthyPercentage", 90)),
            "MaxHealthyPercentage": max_healthy,
            "SkipMatching": _flag(prefs.get("SkipMatching", False)),
            "ScaleInProtectedInstances": str(prefs.get("ScaleInProtectedInstances", "Wait")),
            **(
                {
                    "CheckpointPercentages": sorted(int(p) for p in prefs["CheckpointPercentages"]),
                    "CheckpointDelay": int(prefs.get("CheckpointDelay", 3600)),
                }
                if prefs.get("CheckpointPercentages")
                else {}
            ),
        }
        g = self.group(group)
        wanted = self.launched_from(g)
        targets = {
            s.instance.id
            for s in self.capacity_members(group)
            if not (prefs["SkipMatching"] and wanted is not None and self.track(s).template == wanted)
        }
        rep = Replacement(
            "INSTANCE_REFRESH",
            self._now(),
            targets=targets,
            launch_first=launch_before_terminate or max_healthy > 100,
            refresh_id=self._uuid(),
            total=len(targets),
            preferences=prefs,
        )
        self.replacements[group] = rep
        self.refresh_history.setdefault(group, []).insert(0, rep)
        self._refresh_event(group, rep, "EC2 Auto Scaling Instance Refresh Started")
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
        if rep.cause == "INSTANCE_REFRESH":
            self._refresh_event(group, rep, _REFRESH_EVENT[status])

    def _refresh_event(self, group: str, rep: Replacement, detail_type: str, **extra: str) -> None:
        g = self.group(group)
        detail = {"InstanceRefreshId": rep.refresh_id, "AutoScalingGroupName": group, **extra}
        self.emit(self._base_event(detail_type, [g.arn], detail))

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

    def _batch(self, group: str, rep: Replacement) -> int:
        """How many to replace at once: one when launching first or for lifetime; when terminating first
        as many as MinHealthyPercentage of desired capacity allows (at least one)."""
        if rep.cause != "INSTANCE_REFRESH" or rep.launch_first:
            return 1
        desired = self.group(group).desired_capacity or 0
        keep = math.ceil(desired * int(rep.preferences.get("MinHealthyPercentage", 90)) / 100)
        return max(1, desired - keep)

    def _checkpoint(self, group: str, rep: Replacement) -> bool:
        """True while the refresh pauses at a checkpoint (emits Checkpoint Reached when one is hit)."""
        if rep.cause != "INSTANCE_REFRESH" or not rep.total:
            return False
        if rep.paused_until is not None:
            if self._now() < rep.paused_until:
                return True
            rep.paused_until = None
            return False
        done = 100 * (rep.total - len(rep.targets)) / rep.total
        delay = int(rep.preferences.get("CheckpointDelay", 3600))
        for pct in rep.preferences.get("CheckpointPercentages", []):
            if pct not in rep.checkpoints_hit and done >= pct:
                rep.checkpoints_hit.add(pct)
                rep.paused_until = self._now() + timedelta(seconds=delay)
                self._refresh_event(
                    group,
                    rep,
                    "EC2 Auto Scaling Instance Refresh Checkpoint Reached",
                    CheckpointPercentage=str(pct),
                    CheckpointDelay=str(delay),
                )
                self._schedule_reconcile(group, delay)
                return True
        return False

    def _eligible(self, group: str, rep: Replacement, members: list[Any]) -> tuple[list[Any], bool]:
        """The targets that may be replaced now, and whether protected targets hold the rest back."""
        targets = [s for s in members if s.instance.id in rep.targets]
        mode = rep.preferences.get("ScaleInProtectedInstances", "Wait")
        if rep.cause == "INSTANCE_REFRESH" and mode == "Refresh":
            return targets, False
        free = [s for s in targets if not self.protected(s)]
        if rep.cause == "INSTANCE_REFRESH" and mode == "Ignore":
            rep.targets -= {s.instance.id for s in targets if self.protected(s)}
            return free, False
        return free, len(free) < len(targets)

    def _progress_replacement(self, group: str, rep: Replacement) -> None:
        if rep.cause == "REBALANCE":
            self._progress_rebalance(group, rep)
            return
        if self._in_transition(group):
            return
        members = self.capacity_members(group)
        rep.targets &= {s.instance.id for s in members}
        eligible, held = self._eligible(group, rep, members)
        if self._checkpoint(group, rep):
            return
        if rep.surge == 0 and not rep.targets:
            self._end(group, rep, "Successful")
            return
        if not eligible:  # only protected targets are left: wait for protection to be removed
            rep.waiting_since = rep.waiting_since or self._now()
            waited = (self._now() - rep.waiting_since).total_seconds()
            if rep.cause == "INSTANCE_REFRESH" and waited >= self.refusal_limit_seconds:
                self._end(group, rep, "Failed", "Waited an hour for scale-in protection to be removed.")
                if rep.surge:
                    rep.surge = 0
                    self._schedule_reconcile(group)  # the surge instance goes by normal scale-in
            elif rep.cause == "INSTANCE_REFRESH":
                self._schedule_reconcile(group, self.refusal_limit_seconds - waited)
            return
        rep.waiting_since = None if not held else rep.waiting_since
        if rep.launch_first and rep.surge == 0:
            rep.surge = 1
            self._schedule_reconcile(group)  # launches the extra instance (in the smallest AZ)
            return
        batch = self._batch(group, rep)
        picked = self.balanced_pick(group, eligible, batch)
        capacity: Counter[str] = Counter(
            s.availability_zone for s in eligible if s.instance.id in set(picked)
        )
        suggestions = [
            s
            for z in sorted(capacity)
            for s in self._default_order([e for e in eligible if e.availability_zone == z])
        ]
        chosen = self.choose(group, rep.cause, capacity, suggestions, eligible)
        if not chosen:
            rep.refused_since = rep.refused_since or self._now()
            refused = (self._now() - rep.refused_since).total_seconds()
            if rep.cause == "INSTANCE_REFRESH" and refused >= self.refusal_limit_seconds:
                self._end(group, rep, "Failed", "The termination policy refused every instance for an hour.")
                if rep.surge:
                    rep.surge = 0
                    self._schedule_reconcile(group)  # the surge instance goes by normal scale-in
                return
            self._schedule_reconcile(group, self.policy_retry_seconds)  # lifetime: keeps trying
            return
        rep.refused_since = None
        at = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        why = {
            "INSTANCE_REFRESH": "an instance refresh",
            "MAX_INSTANCE_LIFETIME": "the maximum instance lifetime",
        }[rep.cause]
        for iid in chosen:
            rep.targets.discard(iid)
            if rep.surge:
                rep.surge -= 1
            self.begin_terminate(iid, f"At {at} an instance was taken out of service in response to {why}.")
