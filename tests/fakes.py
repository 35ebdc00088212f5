"""In-memory fakes of the ports (they subclass them, so mypy checks the signatures)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

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
from autojoin.errors import SecretMissing
from autojoin.ports import CompletionOutcome, Fleet, FleetRead, HandOff, JoinTicket, StateStore, TokenVault


@dataclass
class FakeFleet(Fleet):
    groups: dict[str, GroupInfo] = field(default_factory=dict)
    by_id: dict[str, InstanceInfo] = field(default_factory=dict)
    open_actions: set[str] = field(default_factory=set)  # instance ids with an active lifecycle action
    completions: list[tuple[str, LifecycleResult, CompletionOutcome]] = field(default_factory=list)
    heartbeats: list[str] = field(default_factory=list)
    protection: dict[str, bool] = field(default_factory=dict)
    protection_calls: list[tuple[str, tuple[str, ...], bool]] = field(default_factory=list)  # group, ids, on
    desired_calls: list[tuple[str, int]] = field(default_factory=list)
    terminated: list[tuple[str, bool]] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)  # every read, as "<method> <argument>" (AWS calls)

    def add_group(self, name: str, cluster: str | None, role: Role | None, zones: Sequence[str]) -> GroupInfo:
        g = GroupInfo(name=name, cluster=cluster, role=role, zones=tuple(zones))
        self.groups[name] = g
        return g

    def launch(self, iid: str, group: str, az: str, ip: str, itype: str = "t3.small") -> InstanceInfo:
        info = InstanceInfo(
            instance_id=iid,
            az=az,
            group=group,
            instance_type=itype,
            private_ip=ip,
            lifecycle_state="Pending:Wait",
        )
        self.by_id[iid] = info
        self.open_actions.add(iid)
        return info

    def read_cluster(self, cluster: str) -> FleetRead:
        self.reads.append(f"read_cluster {cluster}")
        groups = tuple(g for g in self.groups.values() if g.cluster == cluster)
        rows = {g.name: tuple(i for i in self.by_id.values() if i.group == g.name) for g in groups}
        return FleetRead(groups, rows)

    def group(self, name: str) -> GroupInfo | None:
        self.reads.append(f"group {name}")
        return self.groups.get(name)

    def cluster_groups(self, cluster: str) -> Sequence[GroupInfo]:
        self.reads.append(f"cluster_groups {cluster}")
        return [g for g in self.groups.values() if g.cluster == cluster]

    def instance(self, instance_id: str) -> InstanceInfo | None:
        self.reads.append(f"instance {instance_id}")
        return self.by_id.get(instance_id)

    def instances(self, group: str) -> Sequence[InstanceInfo]:
        self.reads.append(f"instances {group}")
        return [i for i in self.by_id.values() if i.group == group]

    def complete(self, action: LifecycleAction, result: LifecycleResult) -> CompletionOutcome:
        if action.instance_id in self.open_actions:
            self.open_actions.discard(action.instance_id)
            outcome = CompletionOutcome.COMPLETED
            before = self.by_id[action.instance_id].lifecycle_state or ""
            if before.startswith("Terminating"):  # a terminate hook's answer: the termination goes on
                state = "Terminating:Proceed"
            else:
                state = "InService" if result is LifecycleResult.CONTINUE else "Terminating"
            self.by_id[action.instance_id] = self.by_id[action.instance_id].model_copy(
                update={"lifecycle_state": state}
            )
        else:
            outcome = CompletionOutcome.ALREADY_DONE
        self.completions.append((action.instance_id, result, outcome))
        return outcome

    def heartbeat(self, action: LifecycleAction) -> bool:
        self.heartbeats.append(action.instance_id)
        return action.instance_id in self.open_actions

    def set_protection(self, group: str, instance_ids: Sequence[str], protected: bool) -> None:
        self.protection_calls.append((group, tuple(instance_ids), protected))
        for iid in instance_ids:
            self.protection[iid] = protected
            if iid in self.by_id:
                self.by_id[iid] = self.by_id[iid].model_copy(update={"protected_from_scale_in": protected})

    def set_desired(self, group: str, desired: int) -> None:
        g = self.groups[group]
        self.desired_calls.append((group, desired))
        self.groups[group] = g.model_copy(update={"desired": desired, "max_size": max(g.max_size, desired)})

    def terminate(self, instance_id: str, *, decrement: bool) -> None:
        info = self.by_id[instance_id]
        self.terminated.append((instance_id, decrement))
        self.by_id[instance_id] = info.model_copy(update={"lifecycle_state": "Terminating:Wait"})
        if decrement and info.group in self.groups:
            g = self.groups[info.group]
            self.groups[info.group] = g.model_copy(update={"desired": g.desired - 1})


@dataclass
class FakeVault(TokenVault):
    current: dict[Role, str] = field(default_factory=dict)
    versions: dict[tuple[Role, str], tuple[str, list[str]]] = field(default_factory=dict)
    reads: int = 0

    def store(self, role: Role, token: SecretStr, version_id: str | None) -> None:
        """The node side (init/rotate) writes here."""
        if version_id is None:
            self.current[role] = token.get_secret_value()
        else:
            self.versions[(role, version_id)] = (token.get_secret_value(), ["AWSPENDING"])

    def token(self, role: Role, *, refresh: bool = False) -> SecretStr:
        self.reads += 1
        if refresh:
            for (r, _v), (value, stages) in self.versions.items():
                if r is role and stages == ["AWSPENDING"]:
                    return SecretStr(value)
        if role not in self.current:
            raise SecretMissing(f"no {role.value} token")
        return SecretStr(self.current[role])

    def has_token(self, role: Role) -> bool:
        return role in self.current

    def current_token(self, role: Role) -> SecretStr | None:
        return SecretStr(self.current[role]) if role in self.current else None

    def stages(self, role: Role, version_id: str) -> tuple[str, ...]:
        return tuple(self.versions.get((role, version_id), ("", []))[1])

    def pending(self, role: Role, version_id: str) -> SecretStr | None:
        got = self.versions.get((role, version_id))
        return SecretStr(got[0]) if got and "AWSPENDING" in got[1] else None

    def promote_pending(self, role: Role, version_id: str) -> None:
        value, _ = self.versions[(role, version_id)]
        self.current[role] = value
        self.versions[(role, version_id)] = (value, ["AWSCURRENT"])

    def drop_pending(self, role: Role, version_id: str) -> None:
        if (role, version_id) in self.versions:
            value, stages = self.versions[(role, version_id)]
            self.versions[(role, version_id)] = (value, [s for s in stages if s != "AWSPENDING"])


@dataclass
class FakeHandOff(HandOff):
    slots: dict[str, JoinTicket] = field(default_factory=dict)
    offered: list[tuple[str, Role]] = field(default_factory=list)

    def offer(self, instance_id: str, ticket: JoinTicket, ttl_seconds: int) -> None:
        self.slots[instance_id] = ticket
        self.offered.append((instance_id, ticket.role))

    def withdraw(self, instance_id: str) -> None:
        self.slots.pop(instance_id, None)

    def take(self, instance_id: str) -> JoinTicket | None:
        """The node side: read-once."""
        return self.slots.pop(instance_id, None)


@dataclass
class FakeState(StateStore):
    views: dict[str, ClusterView] = field(default_factory=dict)
    claims: dict[str, tuple[str, bool]] = field(default_factory=dict)
    leases: dict[str, str] = field(default_factory=dict)
    lease_asks: list[tuple[str, str, int]] = field(
        default_factory=list
    )  # every acquire: cluster, holder, ttl
    waiting: dict[str, dict[str, tuple[LifecycleAction, Role]]] = field(default_factory=dict)
    records: dict[str, ReconcileRecord] = field(default_factory=dict)
    waiting_removals: dict[str, dict[str, tuple[LifecycleAction, datetime]]] = field(default_factory=dict)

    def snapshot(self, cluster: str) -> ClusterView | None:
        return self.views.get(cluster)

    def save_snapshot(self, view: ClusterView) -> None:
        self.views[view.cluster] = view

    def claim_bootstrap(self, cluster: str, instance_id: str) -> bool:
        if cluster not in self.claims:
            self.claims[cluster] = (instance_id, False)
        return self.claims[cluster][0] == instance_id

    def bootstrap_owner(self, cluster: str) -> str | None:
        return self.claims[cluster][0] if cluster in self.claims else None

    def mark_bootstrapped(self, cluster: str, instance_id: str) -> None:
        self.claims[cluster] = (instance_id, True)

    def release_bootstrap(self, cluster: str, instance_id: str) -> None:
        if self.claims.get(cluster) == (instance_id, False):
            del self.claims[cluster]

    def is_bootstrapped(self, cluster: str) -> bool:
        return self.claims.get(cluster, ("", False))[1]

    def acquire_lease(self, cluster: str, holder: str, ttl_seconds: int) -> bool:
        self.lease_asks.append((cluster, holder, ttl_seconds))
        if self.leases.get(cluster, holder) != holder:
            return False
        self.leases[cluster] = holder
        return True

    def release_lease(self, cluster: str, holder: str) -> None:
        if self.leases.get(cluster) == holder:
            del self.leases[cluster]

    def lease_holder(self, cluster: str) -> str | None:
        return self.leases.get(cluster)

    def add_removal(self, cluster: str, action: LifecycleAction, since: datetime) -> datetime:
        return self.waiting_removals.setdefault(cluster, {}).setdefault(action.instance_id, (action, since))[
            1
        ]

    def removals(self, cluster: str) -> Sequence[tuple[LifecycleAction, datetime]]:
        return list(self.waiting_removals.get(cluster, {}).values())

    def remove_removal(self, cluster: str, instance_id: str) -> None:
        self.waiting_removals.get(cluster, {}).pop(instance_id, None)

    def add_pending(self, cluster: str, action: LifecycleAction, role: Role) -> None:
        self.waiting.setdefault(cluster, {}).setdefault(action.instance_id, (action, role))

    def pending(self, cluster: str) -> Sequence[tuple[LifecycleAction, Role]]:
        return list(self.waiting.get(cluster, {}).values())

    def remove_pending(self, cluster: str, instance_id: str) -> None:
        self.waiting.get(cluster, {}).pop(instance_id, None)

    def reconcile_record(self, cluster: str) -> ReconcileRecord | None:
        return self.records.get(cluster)

    def save_reconcile_record(self, cluster: str, record: ReconcileRecord) -> None:
        self.records[cluster] = record
