"""What the cluster looks like at one instant: swarm members, their AZs, the manager layout and tolerance.

Built from the simulated swarm's own ground truth (``SimSwarm.snapshot()``: machine up, still in the
swarm, a Raft voter, in the main network) and the fleet's view of each instance's AZ and lifecycle state —
not from Swarm's delayed "Ready/Down" display, so a crash counts at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autojoin.domain.model import layout_of
from autojoin.domain.quorum import Tolerance, assess, fault_tolerance, quorum

WAITING = ("Pending:Wait", "Terminating:Wait")


@dataclass(frozen=True)
class MemberView:
    instance_id: str
    role: str  # manager | worker
    az: str | None
    healthy: bool  # machine up, still in the swarm, (managers) a voter in the leader's network
    leader: bool = False
    status: str = ""  # what `docker node ls` shows: ready / down
    manager_status: str | None = None
    up: bool = True  # the machine runs (a crash or an AZ outage takes it down; autojoin never does)

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "role": self.role,
            "az": self.az,
            "healthy": self.healthy,
            "leader": self.leader,
            "status": self.status,
            "manager_status": self.manager_status,
        }


@dataclass(frozen=True)
class ClusterState:
    at: float  # simulated seconds since the start
    zones: tuple[str, ...]
    has_leader: bool
    members: tuple[MemberView, ...] = ()
    groups: dict[str, dict[str, int]] = field(default_factory=dict)  # group -> lifecycle state -> count
    lifecycle: dict[str, int] = field(default_factory=dict)  # completions so far by result
    down_zones: tuple[str, ...] = ()

    @property
    def voters(self) -> int:
        return sum(1 for m in self.members if m.role == "manager")

    @property
    def managers(self) -> int:
        """Healthy managers."""
        return sum(1 for m in self.members if m.role == "manager" and m.healthy)

    @property
    def workers(self) -> int:
        """Healthy workers."""
        return sum(1 for m in self.members if m.role == "worker" and m.healthy)

    @property
    def leader(self) -> str | None:
        return next((m.instance_id for m in self.members if m.leader), None)

    @property
    def layout(self) -> dict[str, int]:
        """Healthy managers per AZ (every zone of the cluster listed)."""
        return layout_of((m.az or "?" for m in self.members if m.role == "manager" and m.healthy), self.zones)

    @property
    def tolerance(self) -> Tolerance:
        return assess(self.layout)

    @property
    def zone_failures_now(self) -> int:
        """AZ losses the swarm survives now: Down voters still count in Raft's N until they are removed."""
        if not self.has_leader or self.voters == 0:
            return 0
        budget = fault_tolerance(self.voters) - (self.voters - self.managers)
        up = [c for z, c in self.layout.items() if z not in self.down_zones]
        counts = sorted(up, reverse=True)
        k = lost = 0
        for c in counts[: max(len(counts) - 1, 0)]:
            lost += c
            if lost > budget:
                break
            k += 1
        return k

    @property
    def node_failures_now(self) -> int:
        """Manager losses the swarm survives now (healthy managers above Raft's quorum of all voters)."""
        if not self.has_leader or self.voters == 0:
            return 0
        return max(0, self.managers - quorum(self.voters))

    @property
    def pending_actions(self) -> int:
        return sum(n for states in self.groups.values() for s, n in states.items() if s in WAITING)

    def in_service(self, group: str) -> int:
        return self.groups.get(group, {}).get("InService", 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "has_leader": self.has_leader,
            "leader": self.leader,
            "managers": self.managers,
            "voters": self.voters,
            "workers": self.workers,
            "layout": self.layout,
            "tolerance": self.tolerance.to_json(),
            "tolerates_zone_failures_now": self.zone_failures_now,
            "tolerates_node_failures_now": self.node_failures_now,
            "down_zones": list(self.down_zones),
            "groups": {g: dict(s) for g, s in self.groups.items()},
            "pending_actions": self.pending_actions,
            "lifecycle": dict(self.lifecycle),
            "members": [m.to_json() for m in self.members],
        }


def members_from_snapshot(
    snapshot: Iterable[Mapping[str, Any]], az_of: Mapping[str, str], leader: str | None
) -> tuple[MemberView, ...]:
    out = []
    for node in snapshot:
        iid = str(node["instance_id"])
        role = str(node["role"])
        healthy = bool(node.get("machine_up")) and bool(node.get("in_swarm")) and node.get("segment", 0) == 0
        if role == "manager":
            healthy = healthy and bool(node.get("voter"))
        out.append(
            MemberView(
                instance_id=iid,
                role=role,
                az=az_of.get(iid) or (node.get("labels") or {}).get("az"),
                healthy=healthy,
                leader=iid == leader,
                status=str(node.get("status", "")),
                manager_status=node.get("manager_status"),
                up=bool(node.get("machine_up", True)),
            )
        )
    return tuple(sorted(out, key=lambda m: (m.role, m.az or "", m.instance_id)))


def count_results(results: Sequence[Any]) -> dict[str, int]:
    c = Counter(str(getattr(r, "result", "")) for r in results)
    return {k: c.get(k, 0) for k in ("CONTINUE", "ABANDON")} | {
        k: v for k, v in c.items() if k not in {"CONTINUE", "ABANDON"}
    }
