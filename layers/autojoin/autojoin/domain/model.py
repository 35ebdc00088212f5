"""Value objects shared by the domain, the services and the ports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    MANAGER = "manager"
    WORKER = "worker"


class LifecycleResult(StrEnum):
    CONTINUE = "CONTINUE"
    ABANDON = "ABANDON"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Node(Frozen):
    """One cluster member (or would-be member) as autojoin last saw it."""

    instance_id: str
    role: Role
    az: str
    healthy: bool = True
    group: str = ""
    node_id: str | None = None  # the orchestrator's own id, once joined
    address: str | None = None  # private IP the orchestrator advertises
    instance_type: str | None = None
    leader: bool = False
    reachable: bool = True  # managers: Raft reachability (Leader/Reachable); workers: always True
    available: bool = True  # orchestrator availability Active (False: drained or paused)


class ClusterView(Frozen):
    """A snapshot of one cluster: its nodes and the AZs its groups span.

    ``taken_at`` is when the orchestrator was read (None in snapshots written before it existed): the
    termination policy treats a snapshot without it, or older than its staleness limit, as stale.
    """

    cluster: str
    nodes: tuple[Node, ...] = ()
    zones: tuple[str, ...] = ()  # every AZ the manager group may use, even empty ones
    taken_at: datetime | None = None
    # A summarised snapshot (too many workers for one state item) lists every manager and only the
    # notable workers (not healthy, or drained); ``worker_counts`` then holds every worker per AZ.
    workers_listed: bool = True
    worker_counts: dict[str, int] = Field(default_factory=dict)

    def managers(self, *, healthy_only: bool = False) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role is Role.MANAGER and (n.healthy or not healthy_only))

    def workers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role is Role.WORKER)

    def manager_layout(self, *, healthy_only: bool = True) -> dict[str, int]:
        """Managers per AZ; every known zone appears, with 0 where it has none."""
        return layout_of((n.az for n in self.managers(healthy_only=healthy_only)), self.zones)

    def node(self, instance_id: str) -> Node | None:
        return next((n for n in self.nodes if n.instance_id == instance_id), None)

    def index(self) -> dict[str, Node]:
        """Nodes by instance id (build once when looking up many)."""
        return {n.instance_id: n for n in self.nodes}

    def summarised(self) -> ClusterView:
        """This view with only the notable workers listed (not healthy, or drained) and every worker
        counted per AZ: what fits one state item however many workers the cluster has."""
        counts = layout_of(n.az for n in self.workers())
        if not self.workers_listed:
            counts = {**self.worker_counts}
        keep = tuple(n for n in self.nodes if n.role is Role.MANAGER or not (n.healthy and n.available))
        return self.model_copy(update={"nodes": keep, "workers_listed": False, "worker_counts": counts})

    def without(self, instance_ids: Iterable[str]) -> ClusterView:
        gone = set(instance_ids)
        return self.model_copy(update={"nodes": tuple(n for n in self.nodes if n.instance_id not in gone)})

    def with_node(self, node: Node) -> ClusterView:
        rest = tuple(n for n in self.nodes if n.instance_id != node.instance_id)
        return self.model_copy(update={"nodes": (*rest, node)})


def layout_of(zones_of_members: Iterable[str], all_zones: Iterable[str] = ()) -> dict[str, int]:
    counts = Counter(zones_of_members)
    out = {z: 0 for z in all_zones}
    for z, c in counts.items():
        out[z] = c
    return dict(sorted(out.items()))


class LifecycleKind(StrEnum):
    LAUNCHING = "launching"
    TERMINATING = "terminating"
    TEST = "test"


class LifecycleAction(Frozen):
    """A lifecycle action, normalised from whichever source delivered it."""

    kind: LifecycleKind
    group: str
    instance_id: str = ""
    hook: str = ""
    token: str = ""  # the lifecycle action token (not a secret: AWS prints it in events)
    origin: str | None = None
    destination: str | None = None
    event_id: str = ""
    metadata: str | None = None

    @property
    def into_warm_pool(self) -> bool:
        return self.destination == "WarmPool"

    @property
    def from_warm_pool_to_pool(self) -> bool:
        return self.origin == "WarmPool" and self.destination == "WarmPool"


class GroupInfo(Frozen):
    """An Auto Scaling group as the Fleet port describes it."""

    name: str
    cluster: str | None = None  # tag autojoin:cluster
    role: Role | None = None  # tag autojoin:role
    zones: tuple[str, ...] = ()
    desired: int = 0
    min_size: int = 0
    max_size: int = 0
    tags: dict[str, str] = Field(default_factory=dict)


class InstanceInfo(Frozen):
    """An EC2 instance as the Fleet port describes it."""

    instance_id: str
    az: str
    group: str | None = None
    instance_type: str | None = None
    private_ip: str | None = None
    state: str = "running"  # EC2 state name
    lifecycle_state: str | None = None  # ASG lifecycle state, e.g. Pending:Wait
    protected_from_scale_in: bool = False
    healthy: bool = True

    @property
    def gone(self) -> bool:
        return self.state in {"shutting-down", "terminated"}
