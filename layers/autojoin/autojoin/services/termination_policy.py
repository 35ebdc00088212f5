"""The custom termination policy of both groups: which of the instances Auto Scaling offers may go.

Auto Scaling calls it synchronously for every Cause (SCALE_IN, INSTANCE_REFRESH, MAX_INSTANCE_LIFETIME,
REBALANCE) and gives it 2 seconds, so it makes exactly one state read (the cluster snapshot) and never
calls the orchestrator or any other AWS API; the decision is linear in the number offered (30,000 at
most, ``HasMoreInstances`` beyond).

Managers: only those whose removal keeps the quorum guard's rules (:mod:`autojoin.domain.guard`), in
the order that keeps AZ tolerance highest; none if none. Workers: Auto Scaling's per-AZ capacity (AZ
balance), drained or unhealthy nodes first. A missing or stale snapshot refuses every manager and allows
workers, and the decision says so. The answer is ``{"InstanceIDs": [...]}``; returning none refuses for
now (Auto Scaling asks again while desired < current).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autojoin.domain.guard import choose_managers, choose_workers
from autojoin.domain.model import ClusterView, Role
from autojoin.errors import BadInput
from autojoin.ports import StateStore

CAUSES = ("SCALE_IN", "INSTANCE_REFRESH", "MAX_INSTANCE_LIFETIME", "REBALANCE")


@dataclass(frozen=True)
class PolicyInput:
    group: str
    cause: str
    offered: list[tuple[str, str]]  # (instance id, AZ), Auto Scaling's order
    capacity: dict[str, int] | None  # CapacityToTerminate per AZ (None when absent)
    has_more: bool = False


def parse_policy_input(event: Any) -> PolicyInput:
    """Validate Auto Scaling's termination policy input (BadInput names what is wrong, never echoes it)."""
    if not isinstance(event, dict):
        raise BadInput(f"termination policy input must be a JSON object, got {type(event).__name__}")
    group = event.get("AutoScalingGroupName")
    if not isinstance(group, str) or not group:
        raise BadInput("termination policy input without AutoScalingGroupName")
    cause = event.get("Cause")
    if cause not in CAUSES:
        raise BadInput(
            f"termination policy input with an unknown Cause (expected one of {', '.join(CAUSES)})"
        )
    instances = event.get("Instances")
    if not isinstance(instances, list):
        raise BadInput("termination policy input without an Instances list")
    offered: list[tuple[str, str]] = []
    append = offered.append
    for item in instances:
        try:
            iid, az = item["InstanceId"], item["AvailabilityZone"]
        except (TypeError, KeyError):
            raise BadInput("an entry of Instances lacks InstanceId or AvailabilityZone") from None
        if type(iid) is not str or type(az) is not str:
            raise BadInput("an entry of Instances has a non-string InstanceId or AvailabilityZone")
        append((iid, az))
    capacity: dict[str, int] | None = None
    raw = event.get("CapacityToTerminate")
    if raw is not None:
        if not isinstance(raw, list):
            raise BadInput("CapacityToTerminate must be a list")
        capacity = {}
        for entry in raw:
            try:
                az, n = entry["AvailabilityZone"], entry["Capacity"]
            except (TypeError, KeyError):
                raise BadInput("an entry of CapacityToTerminate lacks AvailabilityZone or Capacity") from None
            if not isinstance(az, str) or not isinstance(n, int) or n < 0:
                raise BadInput("an entry of CapacityToTerminate has a bad AvailabilityZone or Capacity")
            capacity[az] = capacity.get(az, 0) + n
    return PolicyInput(group, str(cause), offered, capacity, bool(event.get("HasMoreInstances", False)))


@dataclass(frozen=True)
class PolicyConfig:
    cluster: str
    manager_group: str
    worker_group: str
    min_managers: int = 3
    snapshot_max_age: float = 300.0  # seconds; an older snapshot is stale


@dataclass(frozen=True)
class PolicyDecision:
    instance_ids: list[str]
    role: Role | None
    reason: str
    cause: str = ""
    offered: int = 0
    asked: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # managers only
    stale: bool = False
    margin_after: int | None = None

    def answer(self) -> dict[str, list[str]]:
        return {"InstanceIDs": list(self.instance_ids)}

    def to_log(self) -> dict[str, object]:
        """A bounded summary for the log line (never 30,000 ids)."""
        return {
            "role": self.role.value if self.role else None,
            "cause": self.cause,
            "offered": self.offered,
            "asked": self.asked,
            "allowed": len(self.instance_ids),
            "allowed_ids": self.instance_ids[:20],
            "refused": dict(list(self.refused.items())[:20]),
            "stale_snapshot": self.stale,
            "margin_after": self.margin_after,
        }


class TerminationPolicyService:
    def __init__(self, config: PolicyConfig, *, state: StateStore, now: Callable[[], datetime]) -> None:
        self.config = config
        self.state = state
        self._now = now  # the clock's now (this service never sleeps)

    def decide(self, given: PolicyInput) -> PolicyDecision:
        cfg = self.config
        asked = sum(given.capacity.values()) if given.capacity is not None else len(given.offered)
        common: dict[str, Any] = {"cause": given.cause, "offered": len(given.offered), "asked": asked}
        if given.group == cfg.manager_group:
            role = Role.MANAGER
        elif given.group == cfg.worker_group:
            role = Role.WORKER
        else:
            return PolicyDecision(
                [], None, f"group {given.group} is not a group of cluster {cfg.cluster}: refused", **common
            )
        view = self.state.snapshot(cfg.cluster)  # the one state read
        stale = self._stale(view)
        if role is Role.WORKER:
            known = view.index() if view is not None and stale is None else {}
            ids = choose_workers(known, given.offered, given.capacity)
            why = f"workers: {len(ids)} of {len(given.offered)} offered (AZ capacity, drained first)"
            if stale:
                why += f"; {stale}: allowed without node preferences"
            return PolicyDecision(ids, role, why, stale=stale is not None, **common)
        if stale is not None or view is None:
            return PolicyDecision(
                [],
                role,
                f"managers refused: {stale}",
                refused={iid: str(stale) for iid, _ in given.offered[:20]},
                stale=True,
                **common,
            )
        choice = choose_managers(view, [iid for iid, _ in given.offered], asked, cfg.min_managers)
        shape = "-".join(str(c) for c in choice.layout_after.values())
        why = (
            f"managers: {len(choice.allowed)} of {asked} asked may go (leaves {shape}, margin "
            f"{choice.margin_after})"
        )
        if not choice.allowed:
            why = "managers refused: " + ("; ".join(sorted(set(choice.refused.values()))) or "none offered")
        return PolicyDecision(
            list(choice.allowed),
            role,
            why,
            refused=choice.refused,
            margin_after=choice.margin_after,
            **common,
        )

    def _stale(self, view: ClusterView | None) -> str | None:
        if view is None:
            return "no cluster snapshot"
        if view.taken_at is None:
            return "the cluster snapshot has no time"
        age = (self._now() - view.taken_at).total_seconds()
        if age > self.config.snapshot_max_age:
            return f"the cluster snapshot is {age:.0f}s old (limit {self.config.snapshot_max_age:.0f}s)"
        return None
