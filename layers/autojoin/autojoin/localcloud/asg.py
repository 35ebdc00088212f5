"""The EC2 Auto Scaling behaviour moto lacks, assembled into one engine: ``AsgEngine``.

Each concern lives in the module named for it (a reader finds each documented rule there):

- core.py: registry, member lookups, the capacity loop (desired vs actual)
- launch.py: AZ-balanced launches, launch hooks to InService, abandoned launches
- hooks.py: lifecycle hooks, actions, heartbeat and global timeouts
- scalein.py: scale-in victims, scale-in protection, the custom termination policy
- termination.py: terminate hooks, Terminated/Retained, TerminateInstanceInAutoScalingGroup
- replacement.py: instance refresh, maximum instance lifetime (and the rebalance's progress)
- rebalance.py: AZ rebalancing
- health.py: health checks, zone outages
- asgevents.py: the EventBridge events Auto Scaling emits
- activities.py: the scaling activity history (DescribeScalingActivities)
- state.py: the engine's records and AWS's error classes

This module keeps every name it exported before the split importable from here.
"""

from __future__ import annotations

from autojoin.localcloud.activities import Activities
from autojoin.localcloud.asgevents import Emitter
from autojoin.localcloud.health import Health
from autojoin.localcloud.hooks import Hooks
from autojoin.localcloud.launch import Launches
from autojoin.localcloud.rebalance import Rebalancing
from autojoin.localcloud.replacement import Replacements
from autojoin.localcloud.scalein import ScaleIn
from autojoin.localcloud.state import (
    _CAPACITY_STATES,
    _TERMINATING_STATES,
    CAUSES,
    GLOBAL_TIMEOUT_CAP,
    LAUNCHING,
    MAX_HEARTBEAT,
    MIN_HEARTBEAT,
    RETAINED,
    TERMINATING,
    Action,
    GroupConfig,
    HookSpec,
    NoActiveLifecycleAction,
    NoActiveRefresh,
    PolicyInvoker,
    RefreshInProgress,
    Replacement,
    Tracked,
)
from autojoin.localcloud.termination import Termination


class AsgEngine(
    Launches, Hooks, ScaleIn, Termination, Replacements, Rebalancing, Health, Emitter, Activities
):
    """Lifecycle semantics for the groups it manages (one engine per account/region)."""


__all__ = [
    "CAUSES",
    "GLOBAL_TIMEOUT_CAP",
    "LAUNCHING",
    "MAX_HEARTBEAT",
    "MIN_HEARTBEAT",
    "RETAINED",
    "TERMINATING",
    "_CAPACITY_STATES",
    "_TERMINATING_STATES",
    "Action",
    "AsgEngine",
    "GroupConfig",
    "HookSpec",
    "NoActiveLifecycleAction",
    "NoActiveRefresh",
    "PolicyInvoker",
    "RefreshInProgress",
    "Replacement",
    "Tracked",
]
