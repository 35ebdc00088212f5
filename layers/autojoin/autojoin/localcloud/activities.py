"""Scaling activities, as DescribeScalingActivities shows them: one for each launch and each termination
(the same ActivityId as its EventBridge event), and one for a scale-in that protection refused.

Amazon EC2 Auto Scaling API Reference, "Activity" and "DescribeScalingActivities": newest first,
StatusCode InProgress / MidLifecycleAction while a lifecycle action is open, then Successful, Failed or
Cancelled. User Guide, "Use instance scale-in protection": when every instance is protected the activity
history says "Could not scale to desired capacity because all remaining instances are protected from
scale-in." (recorded once per refused pass, not again while nothing changes).
"""

from __future__ import annotations

import json
from typing import Any

from autojoin.localcloud.core import EngineCore


class Activities(EngineCore):
    """The activity history of each managed group."""

    def record_activity(
        self,
        group: str,
        description: str,
        cause: str,
        status: str = "InProgress",
        *,
        az: str = "",
        message: str = "",
    ) -> dict[str, Any]:
        g = self.group(group)
        now = self._now()
        details = {"Subnet ID": self._subnet_for(g, az) or "", "Availability Zone": az} if az else {}
        activity: dict[str, Any] = {
            "ActivityId": self._uuid(),
            "AutoScalingGroupName": group,
            "AutoScalingGroupARN": g.arn,
            "Description": description,
            "Cause": cause,
            "StartTime": now,
            "StatusCode": status,
            "Progress": 0,
            "Details": json.dumps(details),
        }
        if message:
            activity["StatusMessage"] = message
        if status in {"Successful", "Failed", "Cancelled"}:
            self.finish_activity(activity, status, message)
        self.activities.setdefault(group, []).insert(0, activity)
        return activity

    def finish_activity(self, activity: dict[str, Any], status: str, message: str = "") -> None:
        activity["StatusCode"] = status
        activity["EndTime"] = self._now()
        activity["Progress"] = 100
        if message:
            activity["StatusMessage"] = message

    def refused(self, group: str, description: str, cause: str) -> None:
        """A scale-in that could not go ahead: recorded once until something else happens."""
        history = self.activities.get(group, [])
        if history and history[0]["Description"] == description:
            return
        self.record_activity(group, description, cause, "Cancelled")

    def describe_activities(
        self, group: str | None, activity_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        groups = [group] if group else sorted(self.activities)
        out = [a for gname in groups for a in self.activities.get(gname, [])]
        if activity_ids:
            out = [a for a in out if a["ActivityId"] in activity_ids]
        return out
