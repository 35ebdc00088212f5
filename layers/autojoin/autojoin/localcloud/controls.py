"""What a test or scenario does to the local cloud's groups from outside: desired capacity, protection,
termination and lifecycle policies, lifetime, terminations, crashes, zone outages, instance refresh,
seeding described state, and what the groups look like now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autojoin.domain.model import InstanceInfo
from autojoin.localcloud.base import CloudBase
from autojoin.localcloud.errors import LocalCloudError


class Controls(CloudBase):
    """LocalCloud's control surface."""

    def set_desired(self, group: str, desired: int, *, adjust_bounds: bool = True) -> None:
        """SetDesiredCapacity. With ``adjust_bounds`` (default) Min/Max widen to admit ``desired``."""
        g = self._group(group)
        if desired < 0:
            raise LocalCloudError("desired capacity cannot be negative")
        if adjust_bounds:
            g.max_size = max(g.max_size or 0, desired)
            g.min_size = min(g.min_size or 0, desired)
        elif not (g.min_size or 0) <= desired <= (g.max_size or 0):
            raise LocalCloudError(f"desired {desired} outside [{g.min_size}, {g.max_size}] of {group}")
        g.set_desired_capacity(desired)

    def set_protection(self, group: str, instance_ids: list[str], protected: bool = True) -> None:
        self.engine.asb.set_instance_protection(group, instance_ids, protected)

    def set_termination_policy(self, group: str, function_logical_id: str | None) -> None:
        """Make a template function the group's custom termination policy (or remove it)."""
        if function_logical_id is not None and function_logical_id not in self.stack.functions:
            raise LocalCloudError(f"no function {function_logical_id} in the template")
        self.engine.groups[self._group(group).name].policy_function = function_logical_id
        g = self._group(group)
        g.termination_policies = (
            [self.stack.functions[function_logical_id].arn] if function_logical_id else ["Default"]
        )

    def set_lifecycle_policy(self, group: str, *, retain_on_terminate_abandon: bool) -> None:
        self.engine.groups[self._group(group).name].retain_on_terminate_abandon = retain_on_terminate_abandon

    def set_max_instance_lifetime(self, group: str, seconds: int | None) -> None:
        self.engine.groups[self._group(group).name].max_instance_lifetime = seconds

    def terminate_instance(self, instance_id: str, decrement: bool = True) -> None:
        """TerminateInstanceInAutoScalingGroup semantics (terminate hooks run; protection ignored)."""
        self.engine.api_terminate(instance_id, decrement)

    def crash_instance(self, instance_id: str) -> None:
        self.engine.crash(instance_id)

    def zone_outage(self, zone: str) -> list[str]:
        self._zone(zone)
        return self.engine.zone_outage(zone)

    def zone_recover(self, zone: str) -> None:
        self._zone(zone)
        self.engine.zone_recover(zone)

    def start_instance_refresh(
        self,
        group: str,
        *,
        launch_before_terminate: bool = False,
        preferences: dict[str, Any] | None = None,
    ) -> str:
        """StartInstanceRefresh; ``preferences`` as its RefreshPreferences (ScaleInProtectedInstances,
        SkipMatching, MinHealthyPercentage, MaxHealthyPercentage, CheckpointPercentages, CheckpointDelay)."""
        return self.engine.start_instance_refresh(
            self._group(group).name, launch_before_terminate=launch_before_terminate, preferences=preferences
        )

    def rebalance(self, group: str) -> None:
        self.engine.rebalance(self._group(group).name)

    def refresh_status(self, group: str) -> str | None:
        """The latest instance refresh's status (InProgress, Successful, Failed, Cancelled), None if never."""
        history = self.engine.refresh_history.get(group)
        return history[0].status if history else None

    def place_instance(self, group: str, az: str, lifecycle_state: str = "InService") -> str:
        """Seed an instance of ``group`` in ``az`` and ``lifecycle_state``: no hook runs, no event is
        emitted, desired capacity is left alone (a described state that already happened)."""
        self._zone(az)
        return self.engine.place(self._group(group).name, az, lifecycle_state)

    def open_action(
        self,
        instance_id: str,
        lifecycle_state: str,
        *,
        token: str | None = None,
        hook_name: str | None = None,
    ) -> str | None:
        """Put a member in Pending:Wait / Terminating:Wait with an open lifecycle action (``token`` or a new
        one), timers armed, without emitting its event. Returns the token; None if the group has no such
        hook."""
        if lifecycle_state not in {"Pending:Wait", "Terminating:Wait"}:
            raise LocalCloudError(
                f"open_action needs Pending:Wait or Terminating:Wait, not {lifecycle_state}"
            )
        try:
            return self.engine.open_action(instance_id, lifecycle_state, token=token, hook_name=hook_name)
        except ValueError as exc:
            raise LocalCloudError(str(exc)) from None

    def instances(self, group: str, *, include_gone: bool = False) -> list[InstanceInfo]:
        g = self._group(group)
        out = []
        for st in g.instance_states:
            if not include_gone and st.lifecycle_state == "Terminated":
                continue
            inst = st.instance
            out.append(
                InstanceInfo(
                    instance_id=inst.id,
                    az=st.availability_zone,
                    group=g.name,
                    instance_type=inst.instance_type,
                    private_ip=inst.private_ip,
                    state=inst.state,
                    lifecycle_state=st.lifecycle_state,
                    protected_from_scale_in=bool(st.protected_from_scale_in),
                    healthy=st.health_status == "Healthy",
                )
            )
        return out

    def layout(self, group: str) -> dict[str, int]:
        """InService instances per AZ (every group AZ listed)."""
        counts = {z: 0 for z in self._group(group).availability_zones}
        for i in self.instances(group):
            if i.lifecycle_state == "InService":
                counts[i.az] = counts.get(i.az, 0) + 1
        return dict(sorted(counts.items()))

    def subscribe(self, listener: Callable[[str, str], None]) -> None:
        """``listener(what, instance_id)`` for launched, in_service, terminated, crashed, retained."""
        self.engine.listeners.append(listener)
