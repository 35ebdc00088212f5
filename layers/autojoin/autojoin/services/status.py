"""status: what an operator needs at 3 a.m., read-only — from the groups (Fleet) and the state table.

Never calls the orchestrator (that would mean running commands on a node): the cluster side is the last
snapshot the functions wrote, with its age. Nothing here writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autojoin.domain.model import ClusterView, Role
from autojoin.domain.quorum import Tolerance, assess
from autojoin.domain.rebalance import (
    Decision,
    ReconcileRecord,
    best_tolerance,
    impaired_zones,
    manager_target,
    quorum_margin,
    zone_failures_now,
)
from autojoin.domain.rebalance import ManagerGroup as _ManagerGroup
from autojoin.ports import Fleet, StateStore


@dataclass(frozen=True)
class StatusReport:
    cluster: str
    zones: tuple[str, ...]
    target: int
    voters: int
    healthy: int
    margin: int
    tolerance_now: int
    tolerance_best: int
    layout: Tolerance  # every voter per AZ, assessed as if all were up
    unhealthy: dict[str, int]  # voters per AZ that are not healthy
    impaired: tuple[str, ...]
    leader: str | None
    leader_az: str | None
    snapshot_at: datetime | None
    snapshot_age: float | None
    pending: tuple[str, ...]
    retained: tuple[str, ...]
    decisions: tuple[Decision, ...] = ()
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "zones": list(self.zones),
            "target_managers": self.target,
            "voters": self.voters,
            "healthy_managers": self.healthy,
            "quorum_margin": self.margin,
            "tolerance": {"now": self.tolerance_now, "best": self.tolerance_best},
            "layout": self.layout.to_json(),
            "unhealthy": dict(self.unhealthy),
            "impaired_zones": list(self.impaired),
            "leader": self.leader,
            "leader_az": self.leader_az,
            "snapshot_at": self.snapshot_at.isoformat() if self.snapshot_at else None,
            "snapshot_age_seconds": self.snapshot_age,
            "pending_joins": list(self.pending),
            "retained": list(self.retained),
            "groups": self.groups,
            "decisions": [d.model_dump(mode="json") for d in self.decisions],
        }


def cluster_status(cluster: str, *, fleet: Fleet, state: StateStore, now: datetime) -> StatusReport:
    groups = list(fleet.cluster_groups(cluster))
    instances = {g.name: list(fleet.instances(g.name)) for g in groups}
    mgroups = [g for g in groups if g.role is Role.MANAGER]
    zones = tuple(sorted({z for g in mgroups for z in g.zones}))
    view = state.snapshot(cluster) or ClusterView(cluster=cluster, zones=zones)
    record = state.reconcile_record(cluster) or ReconcileRecord()
    impaired = impaired_zones(record.zones)
    target = 0
    if mgroups:
        g = mgroups[0]
        mg = _ManagerGroup(g.name, g.zones, g.desired, g.max_size, tuple(instances[g.name]))
        surge = record.surge_from if record.surge_from is not None else None
        target = manager_target(mg, surge)
    voters = view.managers()
    leader = next((n for n in voters if n.leader), None)
    pending = {a.instance_id for a, _ in state.pending(cluster)}
    member_ids = {n.instance_id for n in view.nodes}
    pending |= {
        i.instance_id
        for rows in instances.values()
        for i in rows
        if i.lifecycle_state == "Pending:Wait" and i.instance_id not in member_ids
    }
    retained = tuple(
        sorted(
            i.instance_id
            for rows in instances.values()
            for i in rows
            if "Retained" in (i.lifecycle_state or "")
        )
    )
    shown = view.model_copy(update={"zones": tuple(sorted(set(zones) | {n.az for n in voters}))})
    taken = view.taken_at
    return StatusReport(
        cluster=cluster,
        zones=zones,
        target=target,
        voters=len(voters),
        healthy=len(view.managers(healthy_only=True)),
        margin=quorum_margin(view),
        tolerance_now=zone_failures_now(shown),
        tolerance_best=best_tolerance(target or len(voters), list(zones), impaired),
        layout=assess(shown.manager_layout(healthy_only=False)),
        unhealthy={
            az: n - shown.manager_layout(healthy_only=True)[az]
            for az, n in shown.manager_layout(healthy_only=False).items()
            if n - shown.manager_layout(healthy_only=True)[az]
        },
        impaired=impaired,
        leader=leader.instance_id if leader else None,
        leader_az=leader.az if leader else None,
        snapshot_at=taken,
        snapshot_age=(now - taken).total_seconds() if taken else None,
        pending=tuple(sorted(pending)),
        retained=retained,
        decisions=record.decisions[-10:],
        groups={
            g.name: {
                "role": g.role.value if g.role else None,
                "desired": g.desired,
                "zones": list(g.zones),
                "instances": len([i for i in instances[g.name] if not i.gone]),
            }
            for g in groups
        },
    )
