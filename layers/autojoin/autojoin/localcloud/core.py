"""The engine's core: what it manages, how it finds members in moto, and the capacity loop that brings a
group to its desired capacity (launch or scale in, then let an instance refresh, lifetime expiry or
rebalance make progress).

Membership lives in moto (``FakeAutoScalingGroup.instance_states``), so every Describe call shows what
the engine decided; the engine keeps what moto has no place for (state.py). Time is the SimClock;
choices that AWS makes "at random" use the seeded RNG."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from autojoin.adapters.sim.clock import Scheduled, SimClock
from autojoin.localcloud.records import LifecycleRecord, PolicyCall
from autojoin.localcloud.state import (
    _CAPACITY_STATES,
    Action,
    GroupConfig,
    HookSpec,
    PolicyInvoker,
    Replacement,
    Tracked,
)


class EngineCore:
    """Registry, lookups and the capacity loop; __init__ holds every piece of engine state."""

    def __init__(
        self,
        *,
        autoscaling_backend: Any,
        ec2_backend: Any,
        clock: SimClock,
        rng: random.Random,
        emit: Callable[[dict[str, Any]], None],
        invoke_policy: PolicyInvoker,
        account: str,
        region: str,
        policy_retry_seconds: float = 60.0,
        refusal_limit_seconds: float = 3600.0,
        health_check_delay: float = 30.0,
        launch_retry_seconds: float = 300.0,
        replace_after_abandon_seconds: float = 30.0,
        terminated_visible_seconds: float = 60.0,
        rebalance_delay_seconds: float = 60.0,
        listeners: list[Callable[[str, str], None]] | None = None,
        caller: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.asb = autoscaling_backend
        self.ec2 = ec2_backend
        self.clock = clock
        self.rng = rng
        self.emit = emit
        self.invoke_policy = invoke_policy
        self.account = account
        self.region = region
        self.policy_retry_seconds = policy_retry_seconds
        self.refusal_limit_seconds = refusal_limit_seconds
        self.health_check_delay = health_check_delay
        self.launch_retry_seconds = launch_retry_seconds
        # An abandoned launch is replaced by a new scaling activity, not in the same instant: a real
        # replacement boots for tens of seconds before its hook fires. Without a delay a launch that is
        # always abandoned would spin in zero simulated time.
        self.replace_after_abandon_seconds = replace_after_abandon_seconds
        self.terminated_visible_seconds = terminated_visible_seconds
        self.listeners = listeners if listeners is not None else []
        self.caller = caller
        self.groups: dict[str, GroupConfig] = {}
        self.hooks: dict[tuple[str, str], HookSpec] = {}
        self.tracked: dict[str, Tracked] = {}
        self.lifecycle_results: list[LifecycleRecord] = []
        self.policy_calls: list[PolicyCall] = []
        self.replacements: dict[str, Replacement] = {}
        self.refresh_history: dict[str, list[Replacement]] = {}
        self.zones_down: set[str] = set()
        self._reconcile_at: dict[str, Scheduled] = {}
        self._rebalance_at: dict[str, Scheduled] = {}
        self.balance_due: set[str] = set()  # groups where something may have unbalanced the AZs
        self.rebalance_delay_seconds = rebalance_delay_seconds
        self.activities: dict[str, list[dict[str, Any]]] = {}  # per group, newest first

    def manage(self, config: GroupConfig) -> None:
        self.groups[config.name] = config

    def manages(self, group: str) -> bool:
        return group in self.groups

    def forget(self, group: str) -> None:
        """DeleteAutoScalingGroup: open actions die with the group (no timeout fires later)."""
        self.groups.pop(group, None)
        for t in self.tracked.values():
            if t.group == group:
                self._drop_actions(t)
        for key in [k for k in self.hooks if k[0] == group]:
            del self.hooks[key]

    def group(self, name: str) -> Any:
        return self.asb.autoscaling_groups[name]

    def _now(self) -> datetime:
        return self.clock.now()

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _state(self, instance_id: str) -> Any | None:
        t = self.tracked.get(instance_id)
        groups = [self.group(t.group)] if t and t.group in self.asb.autoscaling_groups else []
        groups += list(self.asb.autoscaling_groups.values())
        for g in groups:
            for st in g.instance_states:
                if st.instance.id == instance_id:
                    return st
        return None

    def track(self, st: Any) -> Tracked:
        """The engine's record of a member; instances it did not launch (AttachInstances) get one now."""
        iid = st.instance.id
        if iid not in self.tracked:
            self.tracked[iid] = Tracked(
                iid, st.auto_scaling_group.name, st.availability_zone, self._now(), "attached"
            )
        return self.tracked[iid]

    def member(self, instance_id: str) -> tuple[Any, Tracked] | None:
        """The moto instance state and engine record of a member of a managed group."""
        st = self._state(instance_id)
        if st is None or not self.manages(st.auto_scaling_group.name):
            return None
        return st, self.track(st)

    def _notify(self, what: str, instance_id: str) -> None:
        for fn in list(self.listeners):
            fn(what, instance_id)

    def capacity_members(self, group: str) -> list[Any]:
        return [s for s in self.group(group).instance_states if s.lifecycle_state in _CAPACITY_STATES]

    def zones(self, group: str) -> list[str]:
        return list(self.group(group).availability_zones)

    def _subnet_for(self, g: Any, az: str) -> str | None:
        if not g.vpc_zone_identifier:
            return None
        for sid in g.vpc_zone_identifier.split(","):
            if self.ec2.get_subnet(sid).availability_zone == az:
                return str(sid)
        return None

    def suspended(self, group: str, process: str) -> bool:
        """SuspendProcesses: is ``process`` (Launch, Terminate, AZRebalance, HealthCheck,
        ReplaceUnhealthy, ...) suspended for the group?"""
        g = self.asb.autoscaling_groups.get(group)
        return g is not None and any(p["ProcessName"] == process for p in g.suspended_processes)

    def _set_state(self, st: Any, state: str) -> None:
        st.lifecycle_state = state

    def _schedule_reconcile(self, group: str, delay: float = 0.0) -> None:
        when = self._now() + timedelta(seconds=delay)
        existing = self._reconcile_at.get(group)
        if existing is not None and existing.pending and existing.when <= when:
            return
        if existing is not None:
            existing.cancel()
        self._reconcile_at[group] = self.clock.call_at(when, lambda: self.reconcile(group))

    def on_desired(self, g: Any, new_capacity: int | None) -> None:
        """moto's ``set_desired_capacity`` for a managed group: record, then reconcile asynchronously."""
        g.desired_capacity = g.min_size if new_capacity is None else new_capacity
        self._schedule_reconcile(g.name)

    def on_protection_lifted(self, group: str) -> None:
        """SetInstanceProtection(false): the next capacity check may now scale in."""
        if group in self.groups:
            self._schedule_reconcile(group)

    def reconcile(self, group: str) -> None:
        """Bring the group to its desired capacity (the heart of Auto Scaling's capacity loop)."""
        if group not in self.groups or group not in self.asb.autoscaling_groups:
            return
        g = self.group(group)
        rep = self.replacements.get(group)
        surge = rep.surge if rep and rep.status == "InProgress" else 0
        target = (g.desired_capacity or 0) + surge
        members = self.capacity_members(group)
        if len(members) < target and not self.suspended(group, "Launch"):
            for _ in range(target - len(members)):
                self._launch(group, cause=self._launch_cause(g, len(members)))
        elif len(members) > target:
            self._scale_in(group, len(members) - target)
        if rep is not None and rep.status == "InProgress":
            self._progress_replacement(group, rep)
        elif rep is None:
            self.check_balance(group)

    if TYPE_CHECKING:  # defined in the concern modules (asg.py lists them); declared for the type checker

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
        ) -> None: ...
        def _lifecycle_event(self, t: Tracked, action: Action) -> dict[str, Any]: ...
        def _drop_actions(self, t: Tracked) -> None: ...
        def _start_action(self, t: Tracked, hook: HookSpec) -> None: ...
        def hooks_for(self, group: str, transition: str) -> list[HookSpec]: ...
        def _abandon_launch(self, t: Tracked, st: Any) -> None: ...
        def _enter_service(self, t: Tracked, st: Any) -> None: ...
        def _launch(self, group: str, cause: str, *, zone: str | None = None) -> str | None: ...
        def _launch_cause(self, g: Any, current: int) -> str: ...
        def imbalance(self, group: str) -> int: ...
        def rebalance(self, group: str) -> None: ...
        def _lifetime_expired(self, instance_id: str) -> None: ...
        def _progress_replacement(self, group: str, rep: Replacement) -> None: ...
        def _default_order(self, states: Sequence[Any]) -> list[Any]: ...
        def _scale_in(self, group: str, count: int) -> None: ...
        def choose(
            self,
            group: str,
            cause: str,
            capacity: Counter[str],
            suggestions: Sequence[Any],
            eligible: Sequence[Any],
        ) -> list[str]: ...
        def _remove_member(self, t: Tracked, st: Any, final: str) -> None: ...
        def _terminate_now(self, t: Tracked, st: Any) -> None: ...
        def begin_terminate(self, instance_id: str, cause: str) -> None: ...
        def launched_from(self, g: Any) -> tuple[str, str, int] | None: ...
        def protected(self, st: Any) -> bool: ...
        def record_activity(
            self,
            group: str,
            description: str,
            cause: str,
            status: str = "InProgress",
            *,
            az: str = "",
            message: str = "",
        ) -> dict[str, Any]: ...
        def finish_activity(self, activity: dict[str, Any], status: str, message: str = "") -> None: ...
        def refused(self, group: str, description: str, cause: str) -> None: ...
        def check_balance(self, group: str) -> None: ...
        def _base_event(
            self, detail_type: str, resources: list[str], detail: dict[str, Any]
        ) -> dict[str, Any]: ...
        def balanced_pick(self, group: str, states: Sequence[Any], need: int) -> list[str]: ...
        def _in_transition(self, group: str) -> bool: ...
        def _end(self, group: str, rep: Replacement, status: str, reason: str = "") -> None: ...
        def _progress_rebalance(self, group: str, rep: Replacement) -> None: ...
        def processes_changed(self, group: str) -> None: ...
        def protection_changed(self, group: str) -> None: ...
