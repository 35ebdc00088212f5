"""Instance health and zone outages: a crashed instance is stopped, marked Unhealthy after the health
check delay and replaced; a zone outage crashes its members; a recovered zone may start a rebalance."""

from __future__ import annotations

from typing import Any

from autojoin.localcloud.core import EngineCore
from autojoin.localcloud.state import _TERMINATING_STATES, RETAINED, Tracked


class Health(EngineCore):
    """Health checks and availability-zone outages."""

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
        if self.suspended(t.group, "HealthCheck"):
            return  # SuspendProcesses HealthCheck: nothing is marked unhealthy (checked again on resume)
        st.health_status = "Unhealthy"
        self._replace_unhealthy(st, t)

    def _replace_unhealthy(self, st: Any, t: Tracked) -> None:
        if self.suspended(t.group, "ReplaceUnhealthy") or self.suspended(t.group, "Terminate"):
            return  # it stays Unhealthy until ReplaceUnhealthy and Terminate run again
        instance_id = t.instance_id
        at = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        self.begin_terminate(
            instance_id,
            f"At {at} an instance was taken out of service in response to an EC2 instance status checks "
            "failure.",
        )

    def processes_changed(self, group: str) -> None:
        """SuspendProcesses/ResumeProcesses ("Suspend and resume Amazon EC2 Auto Scaling processes"): on
        resume, crashed instances are checked, Unhealthy ones replaced, desired capacity and AZ balance
        pursued again."""
        self.balance_due.add(group)
        self._schedule_reconcile(group)
        for st in list(self.group(group).instance_states):
            t = self.tracked.get(st.instance.id)
            if t is None or t.final_state or st.lifecycle_state in _TERMINATING_STATES | {RETAINED}:
                continue
            if st.health_status == "Unhealthy":
                self._replace_unhealthy(st, t)
            elif t.crashed:
                self._health_check(t.instance_id)

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
        """The zone is back: launches may go there again and the capacity loop's balance check starts an
        AZ rebalance if the group is out of balance ("Availability Zone rebalancing": availability
        outage)."""
        self.zones_down.discard(zone)
        for g in list(self.groups):
            self.balance_due.add(g)
            self._schedule_reconcile(g)
