"""What the Auto Scaling engine keeps beside moto's model: hook specs, group settings moto has no place
for, open lifecycle actions, per-instance facts, the lifecycle-state sets and AWS's error classes.
Plain data, no behaviour beyond derived values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autojoin.adapters.sim.clock import Scheduled

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
CAUSES = ("SCALE_IN", "INSTANCE_REFRESH", "MAX_INSTANCE_LIFETIME", "REBALANCE")
GLOBAL_TIMEOUT_CAP = 48 * 3600
# PutLifecycleHook HeartbeatTimeout range (API Reference, PutLifecycleHook)
MIN_HEARTBEAT, MAX_HEARTBEAT = 30, 7200

# lifecycle states that count toward the group's capacity
_CAPACITY_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed", "InService"})
_TERMINATING_STATES = frozenset({"Terminating", "Terminating:Wait", "Terminating:Proceed"})
# an instance kept by the instance lifecycle policy (API Reference, Instance.LifecycleState)
RETAINED = "Terminating:Retained"


class RefreshInProgress(RuntimeError):
    """AWS ``InstanceRefreshInProgress``."""


class NoActiveRefresh(LookupError):
    """AWS ``ActiveInstanceRefreshNotFound``."""


class NoActiveLifecycleAction(LookupError):
    """What AWS answers as ``ValidationError: No active Lifecycle Action found with …``."""


@dataclass(frozen=True)
class HookSpec:
    group: str
    name: str
    transition: str
    heartbeat_timeout: int = 3600
    default_result: str = "ABANDON"
    metadata: str | None = None

    @property
    def global_timeout(self) -> int:
        return min(GLOBAL_TIMEOUT_CAP, 100 * self.heartbeat_timeout)


@dataclass
class GroupConfig:
    """What the engine needs to know about a group beyond moto's model."""

    name: str
    policy_function: str | None = None  # logical id of the custom termination policy function
    retain_on_terminate_abandon: bool = False  # InstanceLifecyclePolicy TerminateHookAbandon: retain
    balanced_only: bool = False  # AvailabilityZoneDistribution balanced-only (else balanced-best-effort)
    max_instance_lifetime: int | None = None  # seconds
    warm_pool: bool = False  # add Origin/Destination to lifecycle events


@dataclass
class Action:
    token: str
    instance_id: str
    hook: HookSpec
    started: datetime
    heartbeat_timer: Scheduled | None = None
    global_timer: Scheduled | None = None


@dataclass
class Tracked:
    """Engine-side facts about one instance."""

    instance_id: str
    group: str
    az: str
    launched_at: datetime
    cause: str
    actions: dict[str, Action] = field(default_factory=dict)
    final_state: str | None = None  # Terminated once gone
    lifetime_timer: Scheduled | None = None
    crashed: bool = False
    # what it was launched from: ("config", name, 0) or ("template", id, version number); None = attached
    template: tuple[str, str, int] | None = None
    activity: dict[str, Any] | None = None  # its current launch or termination activity


@dataclass
class Replacement:
    """An instance refresh, lifetime expiry or AZ rebalance in progress."""

    cause: str
    started: datetime
    targets: set[str] = field(default_factory=set)  # instances to replace (refresh/lifetime)
    launch_first: bool = False
    surge: int = 0  # instances launched above desired, awaiting their partner's termination
    refused_since: datetime | None = None
    status: str = "InProgress"  # InProgress | Successful | Failed | Cancelled
    refresh_id: str = ""
    total: int = 0
    ended: datetime | None = None
    reason: str = ""
    phase: str = ""  # rebalance: "launched" while its extra instance is on the way
    preferences: dict[str, Any] = field(default_factory=dict)  # instance refresh RefreshPreferences
    paused_until: datetime | None = None  # at a checkpoint until then
    checkpoints_hit: set[int] = field(default_factory=set)
    waiting_since: datetime | None = None  # only protected targets left since then

    def describe(self, group: str) -> dict[str, Any]:
        """An InstanceRefresh as DescribeInstanceRefreshes returns it."""
        done = self.total - len(self.targets) if self.status == "InProgress" else self.total
        out: dict[str, Any] = {
            "InstanceRefreshId": self.refresh_id,
            "AutoScalingGroupName": group,
            "Status": self.status,
            "StartTime": self.started,
            "PercentageComplete": int(100 * done / self.total) if self.total else 100,
            "InstancesToUpdate": len(self.targets) if self.status == "InProgress" else 0,
            "Preferences": self.preferences
            or {
                "MinHealthyPercentage": 90,
                "MaxHealthyPercentage": 110 if self.launch_first else 100,
            },
            "Strategy": "Rolling",
        }
        if self.reason:
            out["StatusReason"] = self.reason
        if self.ended is not None:
            out["EndTime"] = self.ended
        return out


PolicyInvoker = Callable[[str, dict[str, Any]], tuple[list[str] | None, float, bool]]
