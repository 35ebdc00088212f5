"""The events Auto Scaling emits to EventBridge: lifecycle actions (with Origin/Destination where AWS
sends them) and the launch/terminate activity events."""

from __future__ import annotations

from typing import Any

from autojoin.localcloud.core import EngineCore
from autojoin.localcloud.state import (
    LAUNCHING,
    Action,
    Tracked,
)


class Emitter(EngineCore):
    """Building and emitting Auto Scaling's EventBridge events."""

    def _base_event(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": "0",
            "id": self._uuid(),
            "detail-type": detail_type,
            "source": "aws.autoscaling",
            "account": self.account,
            "time": self._now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": resources,
            "detail": detail,
        }

    def _instance_arn(self, instance_id: str) -> str:
        return f"arn:aws:ec2:{self.region}:{self.account}:instance/{instance_id}"

    def _lifecycle_event(self, t: Tracked, action: Action) -> dict[str, Any]:
        g = self.group(t.group)
        launching = action.hook.transition == LAUNCHING
        detail: dict[str, Any] = {
            "LifecycleActionToken": action.token,
            "AutoScalingGroupName": g.name,
            "LifecycleHookName": action.hook.name,
            "EC2InstanceId": t.instance_id,
            "LifecycleTransition": action.hook.transition,
        }
        if action.hook.metadata is not None:
            detail["NotificationMetadata"] = action.hook.metadata
        # "Amazon EC2 Auto Scaling event reference", Lifecycle action events: Origin and Destination on
        # every lifecycle action event (EC2 -> AutoScalingGroup on scale-out, the reverse on scale-in)
        detail["Origin"] = "EC2" if launching else "AutoScalingGroup"
        detail["Destination"] = "AutoScalingGroup" if launching else "EC2"
        kind = (
            "EC2 Instance-launch Lifecycle Action" if launching else "EC2 Instance-terminate Lifecycle Action"
        )
        return self._base_event(kind, [g.arn], detail)

    def _emit_activity(
        self,
        g: Any,
        detail_type: str,
        instance_id: str,
        az: str,
        cause: str,
        *,
        status: str = "InProgress",
        message: str = "",
    ) -> None:
        launch = "Launch" in detail_type
        now = self._now().strftime("%Y-%m-%dT%H:%M:%S.000Z")
        description = (
            f"Launching a new EC2 instance: {instance_id}"
            if launch
            else f"Terminating EC2 instance: {instance_id}"
        )
        t = self.tracked.get(instance_id) if instance_id else None
        activity = t.activity if t is not None else None
        final = "Successful" if detail_type.endswith("Successful") else status
        if activity is None:  # DescribeScalingActivities shows the same activity (same ActivityId)
            activity = self.record_activity(g.name, description, cause, final, az=az, message=message)
        else:
            self.finish_activity(activity, final, message)
        detail: dict[str, Any] = {
            "StatusCode": status,
            "Description": description,
            "AutoScalingGroupName": g.name,
            "ActivityId": activity["ActivityId"],
            "Details": {"Availability Zone": az, "Subnet ID": self._subnet_for(g, az) or ""},
            "RequestId": self._uuid(),
            "StatusMessage": message,
            "EndTime": now,
            "EC2InstanceId": instance_id,
            "StartTime": now,
            "Cause": cause,
        }
        if self.groups.get(g.name) and self.groups[g.name].warm_pool:
            detail["Origin"] = "EC2" if launch else "AutoScalingGroup"
            detail["Destination"] = "AutoScalingGroup" if launch else "EC2"
        resources = [g.arn] + ([self._instance_arn(instance_id)] if instance_id else [])
        self.emit(self._base_event(detail_type, resources, detail))
