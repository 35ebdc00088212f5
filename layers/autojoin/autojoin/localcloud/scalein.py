"""Scale-in: which instances go when desired capacity drops (AZ balance, scale-in protection, the default
termination order) and the custom termination policy (its input, its answer, refusals)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from autojoin.localcloud.core import EngineCore
from autojoin.localcloud.records import PolicyCall


class ScaleIn(EngineCore):
    """Choosing scale-in victims, with or without a custom termination policy."""

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
