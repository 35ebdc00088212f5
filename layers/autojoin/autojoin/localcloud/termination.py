"""Termination: Terminating(:Wait) through terminate hooks to Terminated (or Retained under an instance
lifecycle policy), TerminateInstanceInAutoScalingGroup, and EC2 TerminateInstances on a member."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import Activity

from autojoin.localcloud.core import EngineCore
from autojoin.localcloud.state import (
    _TERMINATING_STATES,
    RETAINED,
    TERMINATING,
    Tracked,
)


class Termination(EngineCore):
    """Taking members out of service."""

    def begin_terminate(self, instance_id: str, cause: str) -> None:
        """Take an instance out of service: Terminating(:Wait) then gone (or Retained). Whether it is
        replaced follows from desired capacity: a terminating instance no longer counts toward it."""
        found = self.member(instance_id)
        if found is None:
            return
        st, t = found
        t.cause = cause
        if st.lifecycle_state == RETAINED:
            t.activity = None  # a new termination activity
            self._drop_actions(t)
            self._terminate_now(t, st)
            return
        if st.lifecycle_state in _TERMINATING_STATES or t.final_state:
            return
        self._drop_actions(t)  # a pending launch action is overtaken by the termination
        if t.lifetime_timer is not None:
            t.lifetime_timer.cancel()
        hooks = self.hooks_for(t.group, TERMINATING)
        t.activity = self.record_activity(
            t.group,
            f"Terminating EC2 instance: {instance_id}",
            cause,
            "MidLifecycleAction" if hooks else "InProgress",
            az=t.az,
        )
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
        if decrement and st.lifecycle_state != RETAINED:
            if (g.desired_capacity or 0) - 1 < (g.min_size or 0):
                raise ValidationError(
                    f"Currently, desiredSize equals minSize ({g.min_size}). Terminating instance without "
                    "replacement will violate group's min size constraint. Either set shouldDecrementDesired"
                    "Capacity flag to false or lower group's min size."
                )
            g.desired_capacity = (g.desired_capacity or 0) - 1
            self.balance_due.add(
                g.name
            )  # a decrement can unbalance the AZs ("Availability Zone rebalancing")
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
            t.activity = None  # a new termination activity
            at = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
            t.cause = (
                f"At {at} an instance was taken out of service in response to an EC2 instance status check "
                "failure."
            )
            self._terminate_now(t, st)
