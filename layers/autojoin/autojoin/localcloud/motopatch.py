"""Hooks the lifecycle engine into moto's Auto Scaling service while a LocalCloud is open.

- ``CompleteLifecycleAction`` and ``RecordLifecycleActionHeartbeat`` become real actions on moto's
  response class (moto dispatches Action → snake_case method), routed into the engine, with AWS's
  ``ValidationError`` when no action is active.
- ``PutLifecycleHook`` keeps ``NotificationMetadata`` (moto drops it).
- For groups the engine manages, moto's own capacity logic (``set_desired_capacity``), its
  ``TerminateInstanceInAutoScalingGroup`` and its reaction to EC2 ``TerminateInstances`` are replaced by
  the engine's. Groups the engine does not manage keep moto's behaviour.

Patches are installed once per process while at least one LocalCloud is open, and removed after.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, EmptyResult

from autojoin.localcloud.asg import (
    GLOBAL_TIMEOUT_CAP,
    MAX_HEARTBEAT,
    MIN_HEARTBEAT,
    AsgEngine,
    HookSpec,
    NoActiveLifecycleAction,
    NoActiveRefresh,
    RefreshInProgress,
)

_LOCK = threading.Lock()
_ENGINES: dict[tuple[str, str], AsgEngine] = {}
_ORIGINALS: dict[tuple[type, str], Any] = {}


def engine_for(account: str, region: str) -> AsgEngine | None:
    return _ENGINES.get((account, region))


def _managed(account: str, region: str, group: str | None) -> AsgEngine | None:
    eng = engine_for(account, region)
    return eng if eng is not None and group is not None and eng.manages(group) else None


# --- new actions on moto's AutoScalingResponse ---------------------------------------------------------


def _lifecycle_target(resp: Any) -> tuple[AsgEngine, str, str, str | None, str | None]:

    group = resp._get_param("AutoScalingGroupName")
    hook = resp._get_param("LifecycleHookName")
    token = resp._get_param("LifecycleActionToken")
    instance_id = resp._get_param("InstanceId")
    eng = engine_for(resp.current_account, resp.region)
    if eng is None or group not in resp.autoscaling_backend.autoscaling_groups:
        raise ValidationError(f"Group {group} not found")
    if not token and not instance_id:
        raise ValidationError("Either LifecycleActionToken or InstanceId must be specified")
    return eng, group, hook, token, instance_id


def complete_lifecycle_action(self: Any) -> Any:

    eng, group, hook, token, instance_id = _lifecycle_target(self)
    result = self._get_param("LifecycleActionResult")
    if result not in {"CONTINUE", "ABANDON"}:
        raise ValidationError("LifecycleActionResult must be either CONTINUE or ABANDON")
    try:
        eng.complete(group, hook, result, token=token, instance_id=instance_id)
    except NoActiveLifecycleAction as exc:
        raise ValidationError(str(exc)) from None
    return EmptyResult()


def record_lifecycle_action_heartbeat(self: Any) -> Any:

    eng, group, hook, token, instance_id = _lifecycle_target(self)
    try:
        eng.heartbeat(group, hook, token=token, instance_id=instance_id)
    except NoActiveLifecycleAction as exc:
        raise ValidationError(str(exc)) from None
    return EmptyResult()


class _InstanceRefreshInProgress(AutoscalingClientError):
    code = "InstanceRefreshInProgress"


class _ActiveInstanceRefreshNotFound(AutoscalingClientError):
    code = "ActiveInstanceRefreshNotFound"


def _managed_group(resp: Any) -> tuple[AsgEngine, str]:
    group = resp._get_param("AutoScalingGroupName")
    eng = engine_for(resp.current_account, resp.region)
    if eng is None or not eng.manages(group):
        raise ValidationError(f"AutoScalingGroup name not found - {group}")
    return eng, group


def start_instance_refresh(self: Any) -> Any:
    """StartInstanceRefresh with its Preferences (MaxHealthyPercentage above 100 launches first)."""
    eng, group = _managed_group(self)
    prefs = self._get_param("Preferences") or {}
    try:
        refresh_id = eng.start_instance_refresh(group, preferences=dict(prefs))
    except RefreshInProgress as exc:
        raise _InstanceRefreshInProgress(str(exc)) from None
    return ActionResult({"InstanceRefreshId": refresh_id})


def describe_instance_refreshes(self: Any) -> Any:
    eng, group = _managed_group(self)
    wanted = self._get_param("InstanceRefreshIds") or []
    refreshes = [
        r.describe(group) for r in eng.refresh_history.get(group, []) if not wanted or r.refresh_id in wanted
    ]
    return ActionResult({"InstanceRefreshes": refreshes})


def cancel_instance_refresh(self: Any) -> Any:
    eng, group = _managed_group(self)
    try:
        refresh_id = eng.cancel_instance_refresh(group)
    except NoActiveRefresh as exc:
        raise _ActiveInstanceRefreshNotFound(str(exc)) from None
    return ActionResult({"InstanceRefreshId": refresh_id})


def _put_lifecycle_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    def put_lifecycle_hook(self: Any) -> Any:
        out = original(self)
        eng = engine_for(self.current_account, self.region)
        group = self._get_param("AutoScalingGroupName")
        if eng is not None and eng.manages(group):
            hook = self.autoscaling_backend.lifecycle_hooks[f"{group}_{self._get_param('LifecycleHookName')}"]
            eng.hooks[(group, hook.name)] = HookSpec(
                group,
                hook.name,
                str(hook.lifecycle_transition),
                hook.heartbeat_timeout,
                hook.default_result,
                self._get_param("NotificationMetadata"),
            )
        return out

    return put_lifecycle_hook


# --- replaced moto model behaviour for managed groups ------------------------------------------------


def _set_desired_capacity(original: Callable[..., Any]) -> Callable[..., Any]:
    def set_desired_capacity(self: Any, new_capacity: int | None) -> None:
        eng = _managed(self.account_id, self.region, self.name)
        if eng is None:
            original(self, new_capacity)
            return
        eng.on_desired(self, new_capacity)

    return set_desired_capacity


def _terminate_instance(original: Callable[..., Any]) -> Callable[..., Any]:
    def terminate_instance(self: Any, instance_id: str, should_decrement: bool) -> Any:
        eng = engine_for(self.account_id, self.region_name)
        if eng is not None and eng.member(instance_id) is not None:
            return eng.api_terminate(instance_id, should_decrement)
        return original(self, instance_id, should_decrement)

    return terminate_instance


def _notify_terminate_instances(original: Callable[..., Any]) -> Callable[..., Any]:
    def notify_terminate_instances(self: Any, instance_ids: list[str]) -> None:
        eng = engine_for(self.account_id, self.region_name)
        if eng is None:
            original(self, instance_ids)
            return
        mine = [i for i in instance_ids if eng.member(i) is not None]
        eng.ec2_terminated(mine)
        rest = [i for i in instance_ids if i not in mine]
        if rest:
            original(self, rest)

    return notify_terminate_instances


def _set_instance_protection(original: Callable[..., Any]) -> Callable[..., Any]:
    """Lifting scale-in protection terminates nothing by itself; Auto Scaling's next capacity check does,
    when desired is below the members (here: a reconcile of the group right after the change)."""

    def set_instance_protection(
        self: Any, group_name: str, instance_ids: list[str], protected_from_scale_in: bool | None
    ) -> None:
        original(self, group_name, instance_ids, protected_from_scale_in)
        eng = _managed(self.account_id, self.region_name, group_name)
        if eng is not None:
            eng.protection_changed(group_name)

    return set_instance_protection


def _processes_changed(original: Callable[..., Any]) -> Callable[..., Any]:
    """SuspendProcesses / ResumeProcesses: moto stores them; the engine acts on what was resumed."""

    def processes(self: Any, group_name: str, scaling_processes: list[str]) -> None:
        original(self, group_name, scaling_processes)
        eng = _managed(self.account_id, self.region_name, group_name)
        if eng is not None:
            eng.processes_changed(group_name)

    return processes


def describe_scaling_activities(self: Any) -> Any:
    """DescribeScalingActivities from the engine's activity history (moto answers an empty list)."""
    eng = engine_for(self.current_account, self.region)
    group = self._get_param("AutoScalingGroupName")
    ids = self._get_param("ActivityIds") or []
    found = eng.describe_activities(group, ids) if eng is not None else []
    return ActionResult({"Activities": found})


def _create_lifecycle_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """PutLifecycleHook (and template hooks): HeartbeatTimeout 30-7200 s, GlobalTimeout as AWS derives it."""

    def create_lifecycle_hook(  # noqa: PLR0917 - moto's signature
        self: Any, name: str, as_name: str, transition: str, timeout: int | None, result: str
    ) -> Any:
        if timeout is not None and not MIN_HEARTBEAT <= timeout <= MAX_HEARTBEAT:
            bound = (
                f"greater than or equal to {MIN_HEARTBEAT}"
                if timeout < MIN_HEARTBEAT
                else (f"less than or equal to {MAX_HEARTBEAT}")
            )
            raise ValidationError(
                f"1 validation error detected: Value '{timeout}' at 'heartbeatTimeout' failed to satisfy "
                f"constraint: Member must have value {bound}"
            )
        hook = original(self, name, as_name, transition, timeout, result)
        hook.global_timeout = min(GLOBAL_TIMEOUT_CAP, 100 * hook.heartbeat_timeout)
        return hook

    return create_lifecycle_hook


def _delete_auto_scaling_group(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_auto_scaling_group(self: Any, group_name: str) -> None:
        eng = engine_for(self.account_id, self.region_name)
        if eng is not None:
            eng.forget(group_name)
        original(self, group_name)

    return delete_auto_scaling_group


def install(engine: AsgEngine) -> None:

    with _LOCK:
        if not _ENGINES:
            _swap(AutoScalingResponse, "complete_lifecycle_action", complete_lifecycle_action)
            _swap(AutoScalingResponse, "record_lifecycle_action_heartbeat", record_lifecycle_action_heartbeat)
            _swap(AutoScalingResponse, "start_instance_refresh", start_instance_refresh)
            _swap(AutoScalingResponse, "describe_instance_refreshes", describe_instance_refreshes)
            _swap(AutoScalingResponse, "cancel_instance_refresh", cancel_instance_refresh)
            _swap(AutoScalingResponse, "describe_scaling_activities", describe_scaling_activities)
            _swap(
                AutoScalingResponse,
                "put_lifecycle_hook",
                _put_lifecycle_hook(AutoScalingResponse.put_lifecycle_hook),
            )
            _swap(
                FakeAutoScalingGroup,
                "set_desired_capacity",
                _set_desired_capacity(FakeAutoScalingGroup.set_desired_capacity),
            )
            _swap(
                AutoScalingBackend,
                "terminate_instance",
                _terminate_instance(AutoScalingBackend.terminate_instance),
            )
            _swap(
                AutoScalingBackend,
                "notify_terminate_instances",
                _notify_terminate_instances(AutoScalingBackend.notify_terminate_instances),
            )
            _swap(
                AutoScalingBackend,
                "create_lifecycle_hook",
                _create_lifecycle_hook(AutoScalingBackend.create_lifecycle_hook),
            )
            _swap(
                AutoScalingBackend,
                "set_instance_protection",
                _set_instance_protection(AutoScalingBackend.set_instance_protection),
            )
            for name in ("suspend_processes", "resume_processes"):
                _swap(AutoScalingBackend, name, _processes_changed(getattr(AutoScalingBackend, name)))
            _swap(
                AutoScalingBackend,
                "delete_auto_scaling_group",
                _delete_auto_scaling_group(AutoScalingBackend.delete_auto_scaling_group),
            )
        _ENGINES[(engine.account, engine.region)] = engine


def uninstall(engine: AsgEngine) -> None:
    with _LOCK:
        if _ENGINES.get((engine.account, engine.region)) is engine:
            del _ENGINES[(engine.account, engine.region)]
        if not _ENGINES:
            for (cls, name), value in list(_ORIGINALS.items()):
                if value is None:
                    delattr(cls, name)
                else:
                    setattr(cls, name, value)
            _ORIGINALS.clear()


def _swap(cls: type, name: str, value: Any) -> None:
    _ORIGINALS[(cls, name)] = cls.__dict__.get(name)
    setattr(cls, name, value)
