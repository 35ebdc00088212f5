"""Scale-in: which instances go when desired capacity drops, and the custom termination policy.

The rules, from the Amazon EC2 Auto Scaling User Guide:

- "Use instance scale-in protection": protection starts when the instance state is ``InService`` (an
  instance in ``Pending:Wait`` can be a scale-in victim). If every instance is protected, desired capacity
  stays decremented and nothing terminates until protection is lifted (the activity history says "Could
  not scale to desired capacity because all remaining instances are protected from scale-in."); lifting
  protection lets the next scale-in pass go ahead.
- "Control which Auto Scaling instances terminate during scale in" and "Configure termination policies"
  (Default termination policy): AZ balance first (the AZ with the most instances that has an unprotected
  one), then within the AZ the oldest launch template or configuration (a launch configuration before a
  launch template, a different template before the current one, an older version before a newer), then
  the instance closest to the next billing hour, then one at random.
- "Create a custom termination policy with Lambda": the input lists eligible instances only from the
  imbalanced AZ, or from every AZ when they are balanced; the answer may name other instances (it
  overrides the input) but protected instances are never terminated and unknown ids mean nothing; when
  it names more than needed, the default policy picks among them (AZ balance first), not answer order;
  no usable answer is a refusal, asked again shortly while desired capacity is below current capacity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from autojoin.localcloud.core import EngineCore
from autojoin.localcloud.records import PolicyCall

ALL_PROTECTED = (
    "Could not scale to desired capacity because all remaining instances are protected from scale-in."
)


class ScaleIn(EngineCore):
    """Choosing scale-in victims, with or without a custom termination policy."""

    def protected(self, st: Any) -> bool:
        """Scale-in protection counts from InService on (it does not cover Pending or Pending:Wait)."""
        return bool(st.protected_from_scale_in) and st.lifecycle_state == "InService"

    def protection_changed(self, group: str) -> None:
        """SetInstanceProtection on a managed group: a scale-in that protection blocked may go ahead."""
        self._schedule_reconcile(group)

    def _default_order(self, states: Sequence[Any]) -> list[Any]:
        """The default termination policy within one AZ: oldest launch template/configuration, then
        closest to the next billing hour, then at random (the seeded RNG)."""
        if not states:
            return []
        now = self._now()
        current = self.launched_from(states[0].auto_scaling_group)
        tie = sorted(s.instance.id for s in states)
        self.rng.shuffle(tie)
        rank = {iid: n for n, iid in enumerate(tie)}

        def age(t: Any) -> tuple[int, int]:
            made = t.template if t is not None else None
            if made is None or current is None:
                return (1, 0)
            if made[0] == "config":
                return (0, 0)  # a launch configuration goes before any launch template
            if current[0] != "template" or made[1] != current[1]:
                return (1, 0)  # a different launch template
            return (2, made[2])  # the current template: the oldest version first

        def key(s: Any) -> tuple[tuple[int, int], float, int]:
            t = self.tracked.get(s.instance.id)
            uptime = (now - t.launched_at).total_seconds() if t is not None else 0.0
            to_next_hour = 3600 - (uptime % 3600)
            return (age(t), to_next_hour, rank[s.instance.id])

        return sorted(states, key=key)

    def plan_scale_in(self, group: str, count: int) -> tuple[Counter[str], list[Any]]:
        """AZ balance first: take from the AZ with the most members that still has an unprotected one.

        Returns the capacity to terminate per AZ and the suggestions: the eligible instances of every AZ
        the balance rule lets it take from (all AZs when they are balanced), in default order."""
        members = self.capacity_members(group)
        per_zone = Counter({z: 0 for z in self.zones(group)})
        per_zone.update(s.availability_zone for s in members)
        start = Counter(per_zone)
        free: dict[str, list[Any]] = {}
        for s in members:
            if not self.protected(s):
                free.setdefault(s.availability_zone, []).append(s)
        capacity: Counter[str] = Counter()
        left = {z: len(v) for z, v in free.items()}
        floor: int | None = None
        for _ in range(count):
            options = [z for z, n in left.items() if n > 0]
            if not options:
                break
            top = max(per_zone[z] for z in options)
            floor = top
            best = sorted(z for z in options if per_zone[z] == top)
            z = best[0] if len(best) == 1 else self.rng.choice(best)
            capacity[z] += 1
            per_zone[z] -= 1
            left[z] -= 1
        if floor is None:
            return capacity, []
        zones = sorted(z for z in free if start[z] >= floor)
        suggestions = [s for z in zones for s in self._default_order(free[z])]
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
        allowed = {s.instance.id: s for s in eligible}
        named: list[Any] = []
        for iid in answer or []:
            if iid in allowed and allowed[iid] not in named:
                named.append(allowed[iid])
        accepted = (
            [s.instance.id for s in named] if len(named) <= need else self.balanced_pick(group, named, need)
        )
        self.policy_calls.append(
            PolicyCall(group, cause, payload, answer, accepted, self._now(), elapsed, over_budget=over)
        )
        return accepted

    def balanced_pick(self, group: str, states: Sequence[Any], need: int) -> list[str]:
        """``need`` of ``states`` as the default termination policy picks them: AZ balance first (the AZ
        with the most members among those with a candidate), then the default order within the AZ."""
        per_zone = Counter(s.availability_zone for s in self.capacity_members(group))
        pool: dict[str, list[Any]] = {}
        for s in states:
            pool.setdefault(s.availability_zone, []).append(s)
        ordered = {z: self._default_order(v) for z, v in sorted(pool.items())}
        out: list[str] = []
        for _ in range(need):
            options = [z for z, v in ordered.items() if v]
            if not options:
                break
            top = max(per_zone[z] for z in options)
            best = sorted(z for z in options if per_zone[z] == top)
            z = best[0] if len(best) == 1 else self.rng.choice(best)
            out.append(ordered[z].pop(0).instance.id)
            per_zone[z] -= 1
        return out

    def _scale_in(self, group: str, count: int) -> None:
        if self.suspended(group, "Terminate"):
            return  # SuspendProcesses Terminate: the group does not scale in
        capacity, suggestions = self.plan_scale_in(group, count)
        g = self.group(group)
        current = len(self.capacity_members(group))
        at = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        cause = (
            f"At {at} an instance was taken out of service in response to a difference between desired "
            f"and actual capacity, shrinking the capacity from {current} to {g.desired_capacity}."
        )
        if not capacity:  # everything left is protected: AWS waits for protection to be lifted
            self.refused(group, ALL_PROTECTED, cause)
            return
        eligible = [s for s in self.capacity_members(group) if not self.protected(s)]
        chosen = self.choose(group, "SCALE_IN", capacity, suggestions, eligible)
        if chosen:
            self.balance_due.add(group)  # a policy's answer may have unbalanced the AZs
        for iid in chosen:
            self.begin_terminate(iid, cause)
        if len(chosen) < sum(capacity.values()):
            self._schedule_reconcile(group, self.policy_retry_seconds)
