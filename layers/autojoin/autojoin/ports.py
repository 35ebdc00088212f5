"""Ports: the only ways the services reach the outside world.

Adapters implement these (aws/, swarm/, local/, sim/); unit tests use fakes that subclass them.
Every method that could carry a join token returns or accepts it as ``SecretStr`` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import SecretStr

from autojoin.domain.model import (
    ClusterView,
    GroupInfo,
    InstanceInfo,
    LifecycleAction,
    LifecycleResult,
    Role,
)
from autojoin.domain.rebalance import ReconcileRecord


class Clock(ABC):
    @abstractmethod
    def now(self) -> datetime: ...

    @abstractmethod
    def sleep(self, seconds: float) -> None: ...


class CompletionOutcome(StrEnum):
    COMPLETED = "completed"
    ALREADY_DONE = "already_done"  # AWS: "No active Lifecycle Action found"


@dataclass(frozen=True)
class FleetRead:
    """A cluster's groups and each group's instances, read together once. A periodic pass (the guard's
    tick, the reconciler) works from one read instead of asking per group: 2 AWS calls, not 2 per group."""

    groups: tuple[GroupInfo, ...]
    members: Mapping[str, tuple[InstanceInfo, ...]]

    def group(self, name: str) -> GroupInfo | None:
        return next((g for g in self.groups if g.name == name), None)

    def instances(self, group: str) -> tuple[InstanceInfo, ...]:
        return self.members.get(group, ())

    def find(self, instance_id: str) -> InstanceInfo | None:
        """The instance if it is a member of one of the groups read."""
        return next((i for rows in self.members.values() for i in rows if i.instance_id == instance_id), None)


class Fleet(ABC):
    """The EC2 Auto Scaling / EC2 view: groups, instances, lifecycle actions, protection."""

    def read_cluster(self, cluster: str) -> FleetRead:
        """The cluster's groups with their instances (adapters override this with a cheaper read)."""
        groups = tuple(self.cluster_groups(cluster))
        return FleetRead(groups, {g.name: tuple(self.instances(g.name)) for g in groups})

    @abstractmethod
    def group(self, name: str) -> GroupInfo | None: ...

    @abstractmethod
    def cluster_groups(self, cluster: str) -> Sequence[GroupInfo]: ...

    @abstractmethod
    def instance(self, instance_id: str) -> InstanceInfo | None: ...

    @abstractmethod
    def instances(self, group: str) -> Sequence[InstanceInfo]: ...

    @abstractmethod
    def complete(self, action: LifecycleAction, result: LifecycleResult) -> CompletionOutcome: ...

    @abstractmethod
    def heartbeat(self, action: LifecycleAction) -> bool:
        """Extend the hook's timer; False when the action is already gone."""

    @abstractmethod
    def set_protection(self, group: str, instance_ids: Sequence[str], protected: bool) -> None: ...

    # --- the reconciler's group changes (services/reconcile.py) ---
    @abstractmethod
    def set_desired(self, group: str, desired: int) -> None:
        """SetDesiredCapacity, raising MaxSize first when ``desired`` is above it."""

    @abstractmethod
    def terminate(self, instance_id: str, *, decrement: bool) -> None:
        """TerminateInstanceInAutoScalingGroup: the group's terminate hooks run (graceful removal)."""


class TokenVault(ABC):
    """Join tokens, one secret per role. Values only ever travel as SecretStr."""

    @abstractmethod
    def token(self, role: Role, *, refresh: bool = False) -> SecretStr:
        """The current token for ``role`` (cached with a max age unless ``refresh``)."""

    @abstractmethod
    def has_token(self, role: Role) -> bool: ...

    @abstractmethod
    def current_token(self, role: Role) -> SecretStr | None:
        """The AWSCURRENT value read now (no cache); None when the secret has none yet."""

    @abstractmethod
    def stages(self, role: Role, version_id: str) -> tuple[str, ...]:
        """The staging labels of one version of the role's secret (empty when it does not exist)."""

    @abstractmethod
    def pending(self, role: Role, version_id: str) -> SecretStr | None: ...

    @abstractmethod
    def promote_pending(self, role: Role, version_id: str) -> None:
        """finishSecret: move AWSCURRENT to ``version_id`` and take AWSPENDING off it."""

    @abstractmethod
    def drop_pending(self, role: Role, version_id: str) -> None:
        """Take AWSPENDING off ``version_id`` (a stale pending value the swarm does not accept)."""


@dataclass(frozen=True)
class JoinTicket:
    """What one instance needs to join: only ever written to that instance's own hand-off slot."""

    role: Role
    token: SecretStr
    manager_addresses: tuple[str, ...]
    cluster: str

    def __repr__(self) -> str:  # never print the token, even by accident
        return (
            f"JoinTicket(role={self.role.value}, cluster={self.cluster}, managers={self.manager_addresses})"
        )


class HandOff(ABC):
    """Per-instance, read-once delivery of a JoinTicket (DynamoDB row keyed by the instance principal)."""

    @abstractmethod
    def offer(self, instance_id: str, ticket: JoinTicket, ttl_seconds: int) -> None: ...

    @abstractmethod
    def withdraw(self, instance_id: str) -> None:
        """Delete an unclaimed ticket (after the join, or when the join is abandoned)."""


@dataclass(frozen=True)
class Member:
    """One orchestrator member as the orchestrator reports it."""

    node_id: str
    hostname: str
    role: Role
    ready: bool  # Status == Ready
    available: bool  # Availability == Active
    reachable: bool  # managers: ManagerStatus Reachable/Leader; workers: True
    leader: bool = False
    in_raft: bool = (
        False  # managers: a Raft member (ManagerStatus present); False once a demotion took effect
    )
    address: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    instance_id: str | None = None  # from the label instance-id, once labelled


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


class CommandRunner(ABC):
    """How an orchestrator command reaches a node (SSM in production, local sockets in the lab)."""

    @abstractmethod
    def run(self, instance_id: str, argv: Sequence[str], *, timeout: float = 60.0) -> CommandResult:
        """Run ``argv`` on the node. ``argv`` never contains a secret."""


class Orchestrator(ABC):
    """Cluster membership operations. Implemented by SwarmOrchestrator (real) and SimSwarm (in memory).

    Nothing here returns a token: init and rotate store tokens in the TokenVault from the node side,
    and a join takes the node's own hand-off ticket.
    """

    @abstractmethod
    def init(self, instance_id: str, advertise_address: str) -> str:
        """Create a new cluster on this instance; the node stores both role tokens. Returns its node id."""

    @abstractmethod
    def join(self, instance_id: str, role: Role) -> str:
        """Have the instance take its hand-off ticket and join. Returns its node id."""

    @abstractmethod
    def members(self) -> Sequence[Member]:
        """Every member, read from a reachable manager. Raises NoLeader without quorum."""

    @abstractmethod
    def label(self, node_id: str, labels: dict[str, str]) -> None: ...

    @abstractmethod
    def promote(self, node_id: str) -> None: ...

    @abstractmethod
    def demote(self, node_id: str) -> None: ...

    @abstractmethod
    def drain(self, node_id: str) -> None: ...

    @abstractmethod
    def leave(self, instance_id: str) -> None:
        """Make the node leave (workers; a demoted manager). Forced only when told to by the caller."""

    @abstractmethod
    def remove(self, node_id: str) -> None:
        """Remove a Down node from the member list."""

    def running_tasks(self, node_id: str) -> int:
        """Tasks still running on the node (a drain is done at 0). Orchestrators without tasks: 0."""
        return 0

    @abstractmethod
    def rotate_token(self, role: Role, version_id: str, current: SecretStr | None = None) -> None:
        """Rotate the role's token in the cluster; the node stores it as AWSPENDING ``version_id``.

        Idempotent: a version already stored is left alone, and when ``current`` (AWSCURRENT) is given and
        the cluster no longer accepts it (an earlier attempt rotated), the cluster's token is stored as the
        version instead of rotating again. ``current`` never leaves the control plane (a one-off MAC does).
        """

    @abstractmethod
    def sync_token(self, role: Role, version_id: str) -> None:
        """Store the token the cluster accepts now as AWSPENDING ``version_id`` (testSecret's repair)."""

    @abstractmethod
    def token_works(self, role: Role, version_id: str) -> bool:
        """testSecret: does the pending token match what the cluster now accepts?"""


class StateStore(ABC):
    """Cluster state in DynamoDB: snapshot, lease, bootstrap claim, pending joins."""

    @abstractmethod
    def snapshot(self, cluster: str) -> ClusterView | None: ...

    @abstractmethod
    def save_snapshot(self, view: ClusterView) -> None: ...

    @abstractmethod
    def claim_bootstrap(self, cluster: str, instance_id: str) -> bool:
        """Conditional write: True for exactly one caller per cluster."""

    @abstractmethod
    def bootstrap_owner(self, cluster: str) -> str | None: ...

    @abstractmethod
    def mark_bootstrapped(self, cluster: str, instance_id: str) -> None: ...

    @abstractmethod
    def release_bootstrap(self, cluster: str, instance_id: str) -> None:
        """Give up an unfinished claim (init failed) so another manager can bootstrap."""

    @abstractmethod
    def is_bootstrapped(self, cluster: str) -> bool: ...

    @abstractmethod
    def acquire_lease(self, cluster: str, holder: str, ttl_seconds: int) -> bool:
        """Conditional write: take the cluster lease if it is free or expired, or renew it if ``holder``
        already holds it. False when someone else holds it."""

    @abstractmethod
    def release_lease(self, cluster: str, holder: str) -> None:
        """Give the lease up, only if ``holder`` still holds it."""

    @abstractmethod
    def lease_holder(self, cluster: str) -> str | None:
        """Who holds the lease now (None when it is free or expired)."""

    @abstractmethod
    def add_removal(self, cluster: str, action: LifecycleAction, since: datetime) -> datetime:
        """Record a terminate action that waits (first record wins); returns when it started waiting."""

    @abstractmethod
    def removals(self, cluster: str) -> Sequence[tuple[LifecycleAction, datetime]]:
        """Every waiting terminate action and when it started waiting."""

    @abstractmethod
    def remove_removal(self, cluster: str, instance_id: str) -> None: ...

    @abstractmethod
    def add_pending(self, cluster: str, action: LifecycleAction, role: Role) -> None: ...

    @abstractmethod
    def pending(self, cluster: str) -> Sequence[tuple[LifecycleAction, Role]]: ...

    @abstractmethod
    def remove_pending(self, cluster: str, instance_id: str) -> None: ...

    # --- the reconciler's memory (services/reconcile.py) ---
    @abstractmethod
    def reconcile_record(self, cluster: str) -> ReconcileRecord | None: ...

    @abstractmethod
    def save_reconcile_record(self, cluster: str, record: ReconcileRecord) -> None: ...
