"""Launches: the AZ with the fewest members, EC2 RunInstances with the zone's subnet and the launch
template, Pending(:Wait) through launch hooks to InService, an abandoned launch and its replacement,
and seeding members that already exist (``place``)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from moto.autoscaling.models import ASG_NAME_TAG, InstanceState

from autojoin.localcloud.core import EngineCore
from autojoin.localcloud.state import (
    LAUNCHING,
    Tracked,
)


class Launches(EngineCore):
    """Launching members and taking them into service."""

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
        t = Tracked(inst.id, group, az, self._now(), cause, template=self.launched_from(g))
        self.tracked[inst.id] = t
        return st, t

    def launched_from(self, g: Any) -> tuple[str, str, int] | None:
        """The group's current launch template and version (or launch configuration): what an instance
        launched now is launched from (the default termination policy's first criterion reads it)."""
        if g.ec2_launch_template is not None:
            version = g.ec2_launch_template.get_version(g.launch_template_version)
            return ("template", str(g.ec2_launch_template.id), int(version.number))
        if g.launch_config is not None:
            return ("config", str(g.launch_config.name), 0)
        return None

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
        t.activity = self.record_activity(
            group,
            f"Launching a new EC2 instance: {inst.id}",
            cause,
            "MidLifecycleAction" if hooks else "InProgress",
            az=az,
        )
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
