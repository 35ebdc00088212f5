"""The EC2 Auto Scaling behaviour moto lacks: lifecycle hooks and actions, AZ-balanced launches,
scale-in through the custom termination policy, instance refresh, maximum instance lifetime,
AZ rebalancing, retention, and the events Auto Scaling emits.

Membership lives in moto (``FakeAutoScalingGroup.instance_states``), so every Describe call shows what
this engine decided; the engine keeps what moto has no place for (hooks with metadata, active actions
and their timers, launch times, refresh/rebalance progress). Time is the SimClock; choices that AWS
makes "at random" use the seeded RNG.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import ASG_NAME_TAG, Activity, InstanceState

from autojoin.adapters.sim.clock import Scheduled, SimClock
from autojoin.localcloud.records import LifecycleRecord, PolicyCall

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
CAUSES = ("SCALE_IN", "INSTANCE_REFRESH", "MAX_INSTANCE_LIFETIME", "REBALANCE")
GLOBAL_TIMEOUT_CAP = 48 * 3600

# lifecycle states that count toward the group's capacity
_CAPACITY_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed", "InService"})
_TERMINATING_STATES = frozenset({"Terminating", "Terminating:Wait", "Terminating:Proceed"})


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


@dataclass
class Replacement:
    """An instance refresh, lifetime expiry or AZ rebalance in progress."""

    cause: str
    started: datetime
    targets: set[str] = field(default_factory=set)  # instances to replace (refresh/lifetime)
    launch_first: bool = False
    refresh_protected: bool = False  # ScaleInProtectedInstances: Refresh (protected instances are replaced)
    surge: int = 0  # instances launched above desired, awaiting their partner's termination
    refused_since: datetime | None = None
    status: str = "InProgress"  # InProgress | Successful | Failed | Cancelled
    refresh_id: str = ""
    total: int = 0
    ended: datetime | None = None
    reason: str = ""

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
            "Preferences": {
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


class AsgEngine:
    """Lifecycle semantics for the groups it manages (one engine per account/region)."""

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

    # --- registry ----------------------------------------------------------------------------------

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

    def put_hook(self, hook: HookSpec) -> None:
        self.hooks[(hook.group, hook.name)] = hook
        self.asb.create_lifecycle_hook(
            name=hook.name,
            as_name=hook.group,
            transition=hook.transition,
            timeout=hook.heartbeat_timeout,
            result=hook.default_result,
        )

    def hooks_for(self, group: str, transition: str) -> list[HookSpec]:
        # moto's own store is the truth for existence (PutLifecycleHook/DeleteLifecycleHook via the API)
        out: list[HookSpec] = []
        for h in self.asb.describe_lifecycle_hooks(as_name=group):
            if h.lifecycle_transition != transition:
                continue
            known = self.hooks.get((group, h.name))
            if (
                known is None
                or known.heartbeat_timeout != h.heartbeat_timeout
                or (known.default_result != h.default_result)
            ):
                known = HookSpec(
                    group,
                    h.name,
                    transition,
                    h.heartbeat_timeout,
                    h.default_result,
                    known.metadata if known else None,
                )
                self.hooks[(group, h.name)] = known
            out.append(known)
        return sorted(out, key=lambda h: h.name)

    # --- helpers -----------------------------------------------------------------------------------

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

    # --- capacity ----------------------------------------------------------------------------------

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
        if len(members) < target:
            for _ in range(target - len(members)):
                self._launch(group, cause=self._launch_cause(g, len(members)))
        elif len(members) > target:
            self._scale_in(group, len(members) - target)
        if rep is not None and rep.status == "InProgress":
            self._progress_replacement(group, rep)

    def _launch_cause(self, g: Any, current: int) -> str:
        at = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"At {at} an instance was started in response to a difference between desired and actual "
            f"capacity, increasing the capacity from {current} to {g.desired_capacity}."
        )

    def pick_zone(self, group: str, *, exclude_down: bool = True) -> str:
        """The AZ with the fewest capacity members (ties broken by the seeded RNG)."""
        zones = self.zones(group)
        if exclude_down:
            healthy = [z for z in zones if z not in self.zones_down]
            zones = healthy or zones
        counts = Counter({z: 0 for z in zones})
        for st in self.capacity_members(group):
            if st.availability_zone in counts:
                counts[st.availability_zone] += 1
        low = min(counts.values())
        best = sorted(z for z, c in counts.items() if c == low)
        return best[0] if len(best) == 1 else self.rng.choice(best)

    def _run_instance(self, group: str, az: str, state: str, cause: str) -> tuple[Any, Tracked]:
        """EC2 RunInstances in ``az`` (its subnet, the launch template, propagated tags) and membership."""
        g = self.group(group)
        tags = dict(g.get_propagated_tags())
        tags[ASG_NAME_TAG] = g.name
        tags.update(g.instance_tags)
        lt = None
        if g.ec2_launch_template is not None:
            lt = {"LaunchTemplateId": g.ec2_launch_template.id}
        reservation = self.ec2.run_instances(
            g.image_id,
            1,
            g.user_data,
            [],
            instance_type=g.instance_type,
            tags={"instance": tags},
            placement=az,
            launch_template=lt,
            is_instance_type_default=False,
            subnet_id=self._subnet_for(g, az),
        )
        inst = reservation.instances[0]
        inst.autoscaling_group = g
        st = InstanceState(
            inst,
            lifecycle_state=state,
            protected_from_scale_in=g.new_instances_protected_from_scale_in,
            autoscaling_group=g,
        )
        g.instance_states.append(st)
        t = Tracked(inst.id, group, az, self._now(), cause)
        self.tracked[inst.id] = t
        return st, t

    def place(self, group: str, az: str, lifecycle_state: str = "InService") -> str:
        """An instance of ``group`` in ``az`` and ``lifecycle_state`` as if it had been there all along: no
        hook runs and no event is emitted (seeding a scenario from a described state)."""
        if az not in self.zones(group):
            raise ValueError(f"{az} is not one of the zones of {group}")
        st, t = self._run_instance(group, az, lifecycle_state, "seeded")
        cfg = self.groups.get(group)
        if lifecycle_state == "InService" and cfg and cfg.max_instance_lifetime:
            t.lifetime_timer = self.clock.call_at(
                t.launched_at + timedelta(seconds=cfg.max_instance_lifetime),
                lambda: self._lifetime_expired(t.instance_id),
            )
        return str(st.instance.id)

    def open_action(
        self,
        instance_id: str,
        lifecycle_state: str,
        *,
        token: str | None = None,
        hook_name: str | None = None,
    ) -> str | None:
        """Put a member in Pending:Wait or Terminating:Wait with an open action (the given token or a new
        one) and its timers armed, without emitting its event. None when the group has no such hook."""
        found = self.member(instance_id)
        if found is None:
            raise ValueError(f"{instance_id} is not a member of a managed group")
        st, t = found
        transition = LAUNCHING if lifecycle_state == "Pending:Wait" else TERMINATING
        hooks = self.hooks_for(t.group, transition)
        if not hooks:
            return None
        hook = next((h for h in hooks if h.name == hook_name), hooks[0])
        self._set_state(st, lifecycle_state)
        action = Action(token or self._uuid(), instance_id, hook, self._now())
        t.actions[hook.name] = action
        self._arm(action)
        return action.token

    def _launch(self, group: str, cause: str, *, zone: str | None = None) -> str | None:

        g = self.group(group)
        cfg = self.groups[group]
        az = zone or self.pick_zone(group, exclude_down=not cfg.balanced_only)
        if az in self.zones_down:
            self._emit_activity(
                g,
                "EC2 Instance Launch Unsuccessful",
                "",
                az,
                cause,
                status="Failed",
                message=f"The requested Availability Zone {az} is impaired. Launching EC2 instance failed.",
            )
            self._schedule_reconcile(group, self.launch_retry_seconds)
            return None
        st, t = self._run_instance(group, az, "Pending", cause)
        inst = st.instance
        self._notify("launched", inst.id)
        hooks = self.hooks_for(group, LAUNCHING)
        if hooks:
            self._set_state(st, "Pending:Wait")
            for hook in hooks:
                self._start_action(t, hook)
        else:
            self._enter_service(t, st)
        return str(inst.id)

    def _enter_service(self, t: Tracked, st: Any) -> None:
        self._set_state(st, "InService")
        cfg = self.groups.get(t.group)
        if cfg and cfg.max_instance_lifetime:
            t.lifetime_timer = self.clock.call_at(
                t.launched_at + timedelta(seconds=cfg.max_instance_lifetime),
                lambda: self._lifetime_expired(t.instance_id),
            )
        self._emit_activity(
            self.group(t.group),
            "EC2 Instance Launch Successful",
            t.instance_id,
            t.az,
            t.cause,
            status="InProgress",
        )
        self._notify("in_service", t.instance_id)
        self._schedule_reconcile(t.group)

    # --- lifecycle actions -------------------------------------------------------------------------

    def _start_action(self, t: Tracked, hook: HookSpec) -> None:
        action = Action(self._uuid(), t.instance_id, hook, self._now())
        t.actions[hook.name] = action
        self._arm(action)
        self.emit(self._lifecycle_event(t, action))

    def _arm(self, action: Action) -> None:
        self._arm_heartbeat(action)
        action.global_timer = self.clock.call_later(
            action.hook.global_timeout, lambda: self._timeout(action, "global-timeout")
        )

    def _arm_heartbeat(self, action: Action) -> None:
        if action.heartbeat_timer is not None:
            action.heartbeat_timer.cancel()
        action.heartbeat_timer = self.clock.call_later(
            action.hook.heartbeat_timeout, lambda: self._timeout(action, "heartbeat-timeout")
        )

    def _timeout(self, action: Action, by: str) -> None:
        t = self.tracked.get(action.instance_id)
        if t is None or t.actions.get(action.hook.name) is not action:
            return
        self._finish_action(t, action, action.hook.default_result, by)

    def find_action(self, group: str, hook: str, *, token: str | None, instance_id: str | None) -> Action:
        for t in self.tracked.values():
            if t.group != group:
                continue
            a = t.actions.get(hook)
            if a is None:
                continue
            if (token and a.token == token) or (not token and instance_id and a.instance_id == instance_id):
                return a
        what = f"instance ID {instance_id}" if instance_id and not token else f"token {token}"
        raise NoActiveLifecycleAction(f"No active Lifecycle Action found with {what}")

    def complete(
        self, group: str, hook: str, result: str, *, token: str | None = None, instance_id: str | None = None
    ) -> None:
        """CompleteLifecycleAction."""
        if result not in {"CONTINUE", "ABANDON"}:
            raise ValueError(f"LifecycleActionResult must be CONTINUE or ABANDON, got {result}")
        action = self.find_action(group, hook, token=token, instance_id=instance_id)
        self._finish_action(self.tracked[action.instance_id], action, result, "api")

    def heartbeat(
        self, group: str, hook: str, *, token: str | None = None, instance_id: str | None = None
    ) -> None:
        """RecordLifecycleActionHeartbeat: restart the heartbeat timer (the global one keeps running)."""
        action = self.find_action(group, hook, token=token, instance_id=instance_id)
        self._arm_heartbeat(action)

    def _finish_action(self, t: Tracked, action: Action, result: str, by: str) -> None:
        for timer in (action.heartbeat_timer, action.global_timer):
            if timer is not None:
                timer.cancel()
        del t.actions[action.hook.name]
        self.lifecycle_results.append(
            LifecycleRecord(
                instance_id=t.instance_id,
                group=t.group,
                hook=action.hook.name,
                transition=action.hook.transition,
                result=result,
                by=by,
                at=self._now(),
                token=action.token,
                caller=self.caller() if by == "api" else None,
            )
        )
        st = self._state(t.instance_id)
        if st is None:
            return
        if action.hook.transition == LAUNCHING:
            if result == "ABANDON":
                self._drop_actions(t)
                self._abandon_launch(t, st)
            elif not t.actions:
                self._set_state(st, "Pending:Proceed")
                self._enter_service(t, st)
        elif result == "ABANDON" and self.groups[t.group].retain_on_terminate_abandon:
            self._drop_actions(t)
            self._set_state(st, "Retained")
            self._notify("retained", t.instance_id)
            self._schedule_reconcile(t.group)
        elif not t.actions:
            self._set_state(st, "Terminating:Proceed")
            self._terminate_now(t, st)

    def _drop_actions(self, t: Tracked) -> None:
        for a in t.actions.values():
            for timer in (a.heartbeat_timer, a.global_timer):
                if timer is not None:
                    timer.cancel()
        t.actions.clear()

    def _abandon_launch(self, t: Tracked, st: Any) -> None:
        g = self.group(t.group)
        self._set_state(st, "Terminating")
        self._remove_member(t, st, "Terminated")
        self._emit_activity(
            g,
            "EC2 Instance Launch Unsuccessful",
            t.instance_id,
            t.az,
            t.cause,
            status="Cancelled",
            message="Instance failed to complete user's Lifecycle Action: Lifecycle Action was abandoned: "
            "Lifecycle Action Completed with ABANDON Result",
        )
        self._schedule_reconcile(t.group, self.replace_after_abandon_seconds)

    # --- termination -------------------------------------------------------------------------------

    def begin_terminate(self, instance_id: str, cause: str) -> None:
        """Take an instance out of service: Terminating(:Wait) then gone (or Retained). Whether it is
        replaced follows from desired capacity: a terminating instance no longer counts toward it."""
        found = self.member(instance_id)
        if found is None:
            return
        st, t = found
        t.cause = cause
        if st.lifecycle_state == "Retained":
            self._drop_actions(t)
            self._terminate_now(t, st)
            return
        if st.lifecycle_state in _TERMINATING_STATES or t.final_state:
            return
        self._drop_actions(t)  # a pending launch action is overtaken by the termination
        if t.lifetime_timer is not None:
            t.lifetime_timer.cancel()
        hooks = self.hooks_for(t.group, TERMINATING)
        if hooks:
            self._set_state(st, "Terminating:Wait")
            for hook in hooks:
                self._start_action(t, hook)
        else:
            self._set_state(st, "Terminating")
            self._terminate_now(t, st)
        self._schedule_reconcile(t.group)

    def _terminate_now(self, t: Tracked, st: Any) -> None:
        g = self.group(t.group)
        self._remove_member(t, st, "Terminated")
        self._emit_activity(g, "EC2 Instance Terminate Successful", t.instance_id, t.az, t.cause)
        self._schedule_reconcile(t.group)

    def _remove_member(self, t: Tracked, st: Any, final: str) -> None:
        inst = st.instance
        if inst.state not in {"terminated"}:
            self.ec2.terminate_instances([inst.id])
        t.final_state = final
        self._set_state(st, final)
        self._notify("terminated", t.instance_id)
        g = self.group(t.group)

        def drop() -> None:
            if st in g.instance_states:
                g.instance_states.remove(st)

        if self.terminated_visible_seconds > 0:
            self.clock.call_later(self.terminated_visible_seconds, drop)
        else:
            drop()

    def api_terminate(self, instance_id: str, decrement: bool) -> Any:
        """TerminateInstanceInAutoScalingGroup (ignores scale-in protection, as AWS does)."""
        st = self._state(instance_id)
        if st is None:
            raise ValidationError(
                f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
            )
        g = st.auto_scaling_group
        original = g.desired_capacity
        leaving = st.lifecycle_state in _TERMINATING_STATES or st.lifecycle_state == "Terminated"
        if leaving:  # already on its way out: nothing changes, desired capacity included
            return Activity(f"Terminating EC2 instance: {instance_id}", "", g, status_code="InProgress")
        if decrement and st.lifecycle_state != "Retained":
            if (g.desired_capacity or 0) - 1 < (g.min_size or 0):
                raise ValidationError(
                    f"Currently, desiredSize equals minSize ({g.min_size}). Terminating instance without "
                    "replacement will violate group's min size constraint. Either set shouldDecrementDesired"
                    "Capacity flag to false or lower group's min size."
                )
            g.desired_capacity = (g.desired_capacity or 0) - 1
        at = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        cause = f"At {at} instance {instance_id} was taken out of service in response to a user request"
        cause += f", shrinking the capacity from {original} to {g.desired_capacity}." if decrement else "."
        self.begin_terminate(instance_id, cause)
        return Activity(f"Terminating EC2 instance: {instance_id}", cause, g, status_code="InProgress")

    def ec2_terminated(self, instance_ids: Iterable[str]) -> None:
        """EC2 TerminateInstances on group members: they leave at once and are replaced (no hooks run)."""
        for iid in instance_ids:
            found = self.member(iid)
            if found is None or found[1].final_state:
                continue
            st, t = found
            self._drop_actions(t)
            at = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
            t.cause = (
                f"At {at} an instance was taken out of service in response to an EC2 instance status check "
                "failure."
            )
            self._terminate_now(t, st)

    # --- health, zones -----------------------------------------------------------------------------

    def crash(self, instance_id: str) -> None:
        """The instance dies: EC2 stops it, the ASG health check marks it Unhealthy and replaces it."""
        found = self.member(instance_id)
        if found is None or found[1].crashed:
            return
        st, t = found
        t.crashed = True
        if st.instance.state == "running":
            st.instance.stop()
        self._notify("crashed", instance_id)
        self.clock.call_later(self.health_check_delay, lambda: self._health_check(instance_id))

    def _health_check(self, instance_id: str) -> None:
        st = self._state(instance_id)
        t = self.tracked.get(instance_id)
        if st is None or t is None or t.final_state or st.lifecycle_state in _TERMINATING_STATES:
            return
        st.health_status = "Unhealthy"
        at = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        self.begin_terminate(
            instance_id,
            f"At {at} an instance was taken out of service in response to an EC2 instance status checks "
            "failure.",
        )

    def zone_outage(self, zone: str) -> list[str]:
        self.zones_down.add(zone)
        hit = [
            s.instance.id
            for g in list(self.groups)
            for s in self.group(g).instance_states
            if s.availability_zone == zone and s.lifecycle_state not in {"Terminated"}
        ]
        for iid in hit:
            self.crash(iid)
        return hit

    def zone_recover(self, zone: str) -> None:
        self.zones_down.discard(zone)
        for g in list(self.groups):
            self._schedule_reconcile(g)
            if self.imbalance(g) > 1:
                self.rebalance(g)

    # --- scale-in and the custom termination policy ------------------------------------------------

    def _default_order(self, states: Sequence[Any]) -> list[Any]:
        """Default termination preference within an AZ: oldest launch first, then instance id."""

        def key(s: Any) -> tuple[datetime, str]:
            t = self.tracked.get(s.instance.id)
            return (t.launched_at if t else self._now(), s.instance.id)

        return sorted(states, key=key)

    def plan_scale_in(self, group: str, count: int) -> tuple[Counter[str], list[Any]]:
        """AZ balance first: take from the AZ with the most members that still has an unprotected one."""
        members = self.capacity_members(group)
        per_zone = Counter({z: 0 for z in self.zones(group)})
        per_zone.update(s.availability_zone for s in members)
        free: dict[str, list[Any]] = {}
        for s in members:
            if not s.protected_from_scale_in:
                free.setdefault(s.availability_zone, []).append(s)
        capacity: Counter[str] = Counter()
        left = {z: len(v) for z, v in free.items()}
        for _ in range(count):
            options = [z for z, n in left.items() if n > 0]
            if not options:
                break
            top = max(per_zone[z] for z in options)
            best = sorted(z for z in options if per_zone[z] == top)
            z = best[0] if len(best) == 1 else self.rng.choice(best)
            capacity[z] += 1
            per_zone[z] -= 1
            left[z] -= 1
        suggestions = [s for z in sorted(capacity) for s in self._default_order(free[z])]
        return capacity, suggestions

    def policy_input(
        self, group: str, cause: str, capacity: Counter[str], suggestions: Sequence[Any]
    ) -> dict[str, Any]:
        g = self.group(group)
        return {
            "AutoScalingGroupARN": g.arn,
            "AutoScalingGroupName": g.name,
            "CapacityToTerminate": [
                {"AvailabilityZone": z, "Capacity": n, "InstanceMarketOption": "on-demand"}
                for z, n in sorted(capacity.items())
                if n > 0
            ],
            "Instances": [
                {
                    "AvailabilityZone": s.availability_zone,
                    "InstanceId": s.instance.id,
                    "InstanceType": s.instance.instance_type,
                    "InstanceMarketOption": "on-demand",
                }
                for s in suggestions[:30000]
            ],
            "Cause": cause,
            "HasMoreInstances": len(suggestions) > 30000,
        }

    def choose(
        self,
        group: str,
        cause: str,
        capacity: Counter[str],
        suggestions: Sequence[Any],
        eligible: Sequence[Any],
    ) -> list[str]:
        """The instances to terminate: the custom policy's answer, or the default pick without one."""
        need = sum(capacity.values())
        cfg = self.groups[group]
        if cfg.policy_function is None:
            picked: list[str] = []
            for z, n in sorted(capacity.items()):
                picked += [s.instance.id for s in suggestions if s.availability_zone == z][:n]
            return picked
        payload = self.policy_input(group, cause, capacity, suggestions)
        answer, elapsed, over = self.invoke_policy(cfg.policy_function, payload)
        allowed = {s.instance.id for s in eligible}
        accepted: list[str] = []
        for iid in answer or []:
            if iid in allowed and iid not in accepted and len(accepted) < need:
                accepted.append(iid)
        self.policy_calls.append(
            PolicyCall(group, cause, payload, answer, accepted, self._now(), elapsed, over_budget=over)
        )
        return accepted

    def _scale_in(self, group: str, count: int) -> None:
        capacity, suggestions = self.plan_scale_in(group, count)
        if not capacity:
            return  # everything left is protected: AWS waits
        eligible = [s for s in self.capacity_members(group) if not s.protected_from_scale_in]
        chosen = self.choose(group, "SCALE_IN", capacity, suggestions, eligible)
        g = self.group(group)
        at = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        for iid in chosen:
            self.begin_terminate(
                iid,
                f"At {at} an instance was taken out of service in response to a difference between desired "
                f"and actual capacity, shrinking the capacity from {len(self.capacity_members(group))} to "
                f"{g.desired_capacity}.",
            )
        if len(chosen) < sum(capacity.values()):
            self._schedule_reconcile(group, self.policy_retry_seconds)

    # --- instance refresh, max instance lifetime, AZ rebalance ------------------------------------

    def start_instance_refresh(
        self, group: str, *, launch_before_terminate: bool = False, refresh_protected: bool = False
    ) -> str:
        """StartInstanceRefresh: replace every instance, one at a time, asking the policy each time.
        ``refresh_protected``: ScaleInProtectedInstances Refresh (otherwise protected ones are skipped)."""
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
            refresh_protected=refresh_protected,
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
            eligible = [
                s
                for s in members
                if s.instance.id in rep.targets and (rep.refresh_protected or not s.protected_from_scale_in)
            ]
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

    # --- events ------------------------------------------------------------------------------------

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
        if self.groups[t.group].warm_pool:
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
        detail: dict[str, Any] = {
            "StatusCode": status,
            "Description": (
                f"Launching a new EC2 instance: {instance_id}"
                if launch
                else f"Terminating EC2 instance: {instance_id}"
            ),
            "AutoScalingGroupName": g.name,
            "ActivityId": self._uuid(),
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
