"""reconcile: put the cluster back together after what the world did to it (schedule, launch/terminate
results).

One run:

1. Observe: the cluster's groups and instances (Fleet) and the orchestrator's members → a ClusterView
   (taken_at = now), written as the snapshot the termination policy reads. Without a leader nothing is
   changed and the old snapshot stays (its age tells the guard it is stale).
2. Zone health with hysteresis (domain/rebalance.py): impaired AZs get no managers, and no
   quorum-changing step runs while an AZ is impaired or settling.
3. Housekeeping, none of it quorum-changing: finish pending joins through LaunchService's own pending path;
   a launch still in Pending:Wait that nobody recorded (its event was lost, or its handler died after the
   node joined and Lambda's retries found the idempotency record still in progress) is recorded as pending,
   its hook kept alive (a heartbeat), and finished by a later run (so a join in progress is never done
   twice); an InService instance outside the swarm is reported, not joined (tickets only go to launching
   instances); dead nodes (Down, their instance gone) go to the guard's removal (``remove_dead``);
   scale-in protection and node labels that drifted are set back.
4. At most one quorum-changing rebalance step (domain/rebalance.py ``next_step``) under the cluster lease.

Dry-run decides and reports everything and changes nothing in the cluster or its groups: it still writes
the snapshot and its own decision log (observations, not changes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autojoin.domain.model import (
    ClusterView,
    GroupInfo,
    InstanceInfo,
    LifecycleAction,
    LifecycleKind,
    Node,
    Role,
)
from autojoin.domain.rebalance import (
    Decision,
    ManagerGroup,
    RebalanceStep,
    ReconcileRecord,
    StepKind,
    best_tolerance,
    expected_labels,
    impaired_zones,
    next_step,
    quorum_margin,
    surge_out,
    unsettled,
    wants_protection,
    watch_zones,
    zone_failures_now,
    zone_signals,
)
from autojoin.errors import NoLeader, TransientAwsError, Unreachable
from autojoin.ports import Clock, Fleet, Member, Orchestrator, StateStore
from autojoin.services.launch import PENDING_WAIT, LaunchDecision, LaunchService
from autojoin.services.removal import DeadNode

LEASE_HOLDER = "reconcile"
RemoveDead = Callable[[Sequence[Member]], Sequence[DeadNode]]  # the guard's RemovalService.remove_dead_nodes


@dataclass(frozen=True)
class ReconcileConfig:
    cluster: str
    dry_run: bool = False
    recover_after: float = 900.0  # seconds an impaired AZ must look good before it is trusted again
    lease_ttl: int = 300
    launch_hook: str = "autojoin-launch"
    min_managers: int = 1  # the quorum guard's floor: no rebalance plans below it


@dataclass(frozen=True)
class ReconcileReport:
    """What one run saw, decided and did (``actions``: done, or with dry-run what would have been done)."""

    cluster: str
    dry_run: bool
    has_leader: bool
    voters: int = 0
    healthy_managers: int = 0
    quorum_margin: int = 0
    zone_failures_tolerated: int = 0
    best_zone_failures: int = 0
    leader_az: str | None = None
    pending_joins: int = 0
    target: int = 0
    layout: dict[str, int] = field(default_factory=dict)
    impaired: tuple[str, ...] = ()
    retained: tuple[str, ...] = ()
    step: RebalanceStep | None = None
    actions: tuple[str, ...] = ()
    joined: tuple[LaunchDecision, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "dry_run": self.dry_run,
            "has_leader": self.has_leader,
            "voters": self.voters,
            "healthy_managers": self.healthy_managers,
            "quorum_margin": self.quorum_margin,
            "zone_failures_tolerated": self.zone_failures_tolerated,
            "best_zone_failures": self.best_zone_failures,
            "leader_az": self.leader_az,
            "pending_joins": self.pending_joins,
            "target": self.target,
            "layout": dict(self.layout),
            "impaired": list(self.impaired),
            "retained": list(self.retained),
            "step": self.step.describe() if self.step else None,
            "plan": list(self.step.plan) if self.step else [],
            "actions": list(self.actions),
            "joined": [d.to_dict() for d in self.joined],
            "error": self.error,
        }


def _member_instance(m: Member) -> str:
    return m.instance_id or m.labels.get("instance-id") or m.hostname


def build_view(
    cluster: str,
    members: Sequence[Member],
    instances: dict[str, InstanceInfo],
    zones: Sequence[str],
    taken_at: Any,
) -> ClusterView:
    """The cluster as the orchestrator and EC2 show it: the AZ from EC2 where the instance is known, health
    from the orchestrator (a node whose instance is gone is not healthy, whatever it still shows)."""
    nodes = []
    for m in members:
        iid = _member_instance(m)
        inst = instances.get(iid)
        gone = inst is not None and (inst.gone or "Terminat" in (inst.lifecycle_state or ""))
        nodes.append(
            Node(
                instance_id=iid,
                role=Role.MANAGER if (m.role is Role.MANAGER or m.in_raft) else Role.WORKER,
                az=inst.az if inst else m.labels.get("az", "unknown"),
                healthy=m.ready and m.reachable and not (inst is not None and inst.gone),
                group=(inst.group if inst and inst.group else m.labels.get("asg", "")),
                node_id=m.node_id,
                address=m.address,
                instance_type=(inst.instance_type if inst else None) or m.labels.get("instance-type"),
                leader=m.leader,
                reachable=m.reachable and not gone,
                available=m.available,
            )
        )
    return ClusterView(cluster=cluster, nodes=tuple(nodes), zones=tuple(sorted(zones)), taken_at=taken_at)


class ReconcileService:
    def __init__(
        self,
        config: ReconcileConfig,
        *,
        fleet: Fleet,
        orchestrator: Orchestrator,
        state: StateStore,
        clock: Clock,
        launch: LaunchService,
        remove_dead: RemoveDead | None = None,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.orchestrator = orchestrator
        self.state = state
        self.clock = clock
        self.launch = launch
        self.remove_dead = remove_dead

    # ---------------------------------------------------------------------------------------------
    def run(self) -> ReconcileReport:
        cfg = self.config
        now = self.clock.now()
        dry = cfg.dry_run
        read = self.fleet.read_cluster(cfg.cluster)
        groups = list(read.groups)
        by_group: dict[str, list[InstanceInfo]] = {g.name: list(read.instances(g.name)) for g in groups}
        instances = {i.instance_id: i for rows in by_group.values() for i in rows}
        mgroups = [g for g in groups if g.role is Role.MANAGER]
        zones = sorted({z for g in mgroups for z in g.zones})
        record = self.state.reconcile_record(cfg.cluster) or ReconcileRecord()
        retained = tuple(
            sorted(i.instance_id for i in instances.values() if "Retained" in (i.lifecycle_state or ""))
        )
        pending = list(self.state.pending(cfg.cluster))
        try:
            members = list(self.orchestrator.members())
        except (NoLeader, Unreachable) as exc:
            line = f"no leader ({type(exc).__name__}): observed only, nothing changed"
            self._save(record.logged([Decision(at=now, kind="no-leader", detail=line, dry_run=dry)]))
            last = self._last_voters()
            return ReconcileReport(
                cfg.cluster,
                dry,
                has_leader=False,
                voters=last,
                quorum_margin=-1 if last else 0,
                pending_joins=len(pending),
                retained=retained,
                actions=(line,),
                error=type(exc).__name__,
            )
        decisions: list[Decision] = []
        actions: list[str] = []

        def did(kind: str, detail: str) -> None:
            text = f"{'would ' if dry else ''}{detail}"
            actions.append(text)
            decisions.append(Decision(at=now, kind=kind, detail=text, dry_run=dry))

        view = build_view(cfg.cluster, members, instances, zones, now)
        if self._dead_nodes(view, members, instances, did):
            members = list(self.orchestrator.members())
            view = build_view(cfg.cluster, members, instances, zones, now)
        self.state.save_snapshot(view)

        watches = watch_zones(record.zones, zone_signals(view, zones), now, cfg.recover_after)
        impaired = impaired_zones(watches)

        for z, w in watches.items():
            if w.impaired != record.zones.get(z, w).impaired or (z not in record.zones and w.impaired):
                decisions.append(
                    Decision(
                        at=now, kind="zone", detail=f"{z} {'impaired' if w.impaired else 'trusted again'}"
                    )
                )

        # --- housekeeping: pending joins, lost launch events, dead nodes, drift ---------------------
        joined: tuple[LaunchDecision, ...] = ()
        if pending:
            if dry:
                did(
                    "join",
                    f"finish {len(pending)} pending join(s): {', '.join(a.instance_id for a, _ in pending)}",
                )
            else:
                joined = self.launch.finish_pending()
                for d in joined:
                    did("join", f"pending {d.instance_id}: {d.outcome.value} ({d.reason})")
        known = {a.instance_id for a, _ in pending}
        member_ids = {n.instance_id for n in view.nodes}
        for g in groups:
            if g.role is None:
                continue
            for inst in by_group[g.name]:
                joined_open = inst.instance_id in member_ids and inst.lifecycle_state == PENDING_WAIT
                if inst.instance_id in known or (inst.instance_id in member_ids and not joined_open):
                    continue
                if inst.lifecycle_state == "InService":
                    # tickets only ever go to an instance its group is launching (services/launch.py):
                    # an in-service machine outside the swarm is reported (once), for an operator to replace
                    if any(
                        d.kind == "not-in-swarm" and inst.instance_id in d.detail for d in record.decisions
                    ):
                        continue
                    decisions.append(
                        Decision(
                            at=now,
                            kind="not-in-swarm",
                            detail=f"{inst.instance_id} ({g.role.value}) is in service but not in the swarm: "
                            "terminate it so that the group replaces it",
                            dry_run=dry,
                        )
                    )
                    continue
                if inst.lifecycle_state != PENDING_WAIT:
                    continue
                action = LifecycleAction(
                    kind=LifecycleKind.LAUNCHING,
                    group=g.name,
                    instance_id=inst.instance_id,
                    hook=cfg.launch_hook,
                    event_id=f"reconcile:{inst.instance_id}",
                )
                if not dry:
                    # kept alive like LaunchService's own pending path: the runs until the hook would time
                    # out all get to finish it, not only the next one (a failed run would otherwise lose it)
                    self.state.add_pending(cfg.cluster, action, g.role)
                    try:
                        alive = self.fleet.heartbeat(action)
                    except TransientAwsError as exc:
                        # throttled past the SDK's retries: the record is written and the next run (or
                        # this launch's own) heartbeats it again; the rest of this run still happens
                        why = "its heartbeat was refused, the next run sends it"
                        did(
                            "lost-launch",
                            f"record {inst.instance_id} ({g.role.value}) as pending; {why} "
                            f"({type(exc).__name__}: {exc})",
                        )
                        continue
                    if not alive:  # finished meanwhile: nothing left to do
                        self.state.remove_pending(cfg.cluster, inst.instance_id)
                        continue
                why = "joined, its launch action still open" if joined_open else "no join under way"
                did("lost-launch", f"record {inst.instance_id} ({g.role.value}, {why}) as pending")
        self._drift(view, members, groups, by_group, did)

        # --- one quorum-changing step ---------------------------------------------------------------
        step: RebalanceStep | None = None
        target = 0
        if mgroups:
            mg = mgroups[0]
            group = ManagerGroup(mg.name, tuple(mg.zones), mg.desired, mg.max_size, tuple(by_group[mg.name]))
            surge = record.surge_from if surge_out(group, record.surge_from) else None
            step = next_step(
                view,
                group,
                surge_from=surge,
                impaired=impaired,
                unsettled_reason=unsettled(watches, mg.zones, now, cfg.recover_after),
                has_leader=True,
                floor=cfg.min_managers,
            )
            target = step.target
            record = record.model_copy(update={"surge_from": surge})
            if step.kind in {StepKind.LAUNCH, StepKind.RETIRE}:
                record = self._take_step(step, mg, group, record, did)
            elif step.kind is StepKind.WAIT and (
                not record.decisions or record.decisions[-1].detail != step.reason
            ):
                decisions.append(Decision(at=now, kind="wait", detail=step.reason, dry_run=dry))
        self._save(record.model_copy(update={"zones": watches}).logged(decisions))

        voters = view.managers()
        leader = next((n for n in voters if n.leader), None)
        return ReconcileReport(
            cfg.cluster,
            dry,
            has_leader=True,
            voters=len(voters),
            healthy_managers=len(view.managers(healthy_only=True)),
            quorum_margin=quorum_margin(view),
            zone_failures_tolerated=zone_failures_now(view),
            best_zone_failures=best_tolerance(target or len(voters), zones, impaired),
            leader_az=leader.az if leader else None,
            pending_joins=len(self.state.pending(cfg.cluster)),
            target=target,
            layout=view.manager_layout(healthy_only=True),
            impaired=impaired,
            retained=retained,
            step=step,
            actions=tuple(actions),
            joined=joined,
        )

    # ---------------------------------------------------------------------------------------------
    def _take_step(
        self,
        step: RebalanceStep,
        mg: GroupInfo,
        group: ManagerGroup,
        record: ReconcileRecord,
        did: Callable[[str, str], None],
    ) -> ReconcileRecord:
        cfg = self.config
        if cfg.dry_run:
            what = (
                f"launch a manager into {step.az}"
                if step.kind is StepKind.LAUNCH
                else f"retire {step.instance_id}"
            )
            did("rebalance", f"{what}: {step.reason}")
            return record
        if not self.state.acquire_lease(cfg.cluster, LEASE_HOLDER, cfg.lease_ttl):
            did("rebalance", f"skip {step.kind.value} in {step.az}: the cluster lease is held")
            return record
        try:
            if step.kind is StepKind.LAUNCH:
                record = record.model_copy(update={"surge_from": step.target})
                self._save(record)  # remembered before the group changes: a crash here leaves no orphan surge
                self.fleet.set_desired(mg.name, group.desired + 1)
                did(
                    "rebalance",
                    f"launch a manager into {step.az} (desired {group.desired + 1}): {step.reason}",
                )
            else:
                assert step.instance_id is not None
                self.fleet.set_protection(mg.name, [step.instance_id], False)
                self.fleet.terminate(step.instance_id, decrement=True)
                did("rebalance", f"retire {step.instance_id} from {step.az} through {mg.name}: {step.reason}")
        finally:
            self.state.release_lease(cfg.cluster, LEASE_HOLDER)
        return record

    def _dead_nodes(
        self,
        view: ClusterView,
        members: Sequence[Member],
        instances: dict[str, InstanceInfo],
        did: Callable[[str, str], None],
    ) -> bool:
        """Nodes that show Down and whose instance is gone go to the guard's dead-node cleanup (which
        demotes a dead manager first when that is safe, under the lease). True when one was removed."""
        dead = []
        for node in view.nodes:
            inst = instances.get(node.instance_id)
            if node.healthy or (inst is not None and not inst.gone):
                continue  # alive, or terminating: the terminate hook (the guard) removes it gracefully
            if inst is None:  # not in a group any more: ask EC2 whether the machine still exists
                inst = self.fleet.instance(node.instance_id)
                if inst is not None and not inst.gone:
                    continue
            dead.append(node)
        if not dead:
            return False
        if self.remove_dead is None or self.config.dry_run:
            for node in dead:
                how = "" if self.remove_dead else " (no removal wired)"
                did("dead-node", f"remove dead node {node.instance_id} ({node.role.value}){how}")
            return False
        removed = False
        for d in self.remove_dead(members):
            removed = removed or d.removed
            what = "removed" if d.removed else "kept"
            did("dead-node", f"dead node {d.instance_id} ({d.role.value}): {what}, {d.reason}")
        return removed

    def _drift(
        self,
        view: ClusterView,
        members_seen: Sequence[Member],
        groups: Sequence[GroupInfo],
        by_group: dict[str, list[InstanceInfo]],
        did: Callable[[str, str], None],
    ) -> None:
        """Set back scale-in protection and labels that drifted."""
        members = {m.node_id: m for m in members_seen}
        for g in groups:
            fix: list[str] = []
            live = [
                i
                for i in by_group[g.name]
                if not i.gone and (i.lifecycle_state or "").startswith(("Pending", "InService"))
            ]
            surplus = len(live) > g.desired  # the guard has released one for a scale-in: not drift
            for inst in by_group[g.name]:
                node = view.node(inst.instance_id)
                want = wants_protection(node, inst)
                if want is True and not inst.protected_from_scale_in and not surplus:
                    fix.append(inst.instance_id)
                if node is not None and node.node_id and node.healthy:
                    have = members.get(node.node_id)
                    labels = expected_labels(node, inst)
                    if have is not None and any(have.labels.get(k) != v for k, v in labels.items()):
                        if not self.config.dry_run:
                            self.orchestrator.label(node.node_id, labels)
                        shown = ", ".join(f"{k}={v}" for k, v in labels.items())
                        did("labels", f"relabel {inst.instance_id} ({shown})")
            if fix:
                if not self.config.dry_run:
                    self.fleet.set_protection(g.name, fix, True)
                did("protection", f"protect {', '.join(fix)} from scale-in again ({g.name})")

    # ---------------------------------------------------------------------------------------------
    def _last_voters(self) -> int:
        snap = self.state.snapshot(self.config.cluster)
        return len(snap.managers()) if snap else 0

    def _save(self, record: ReconcileRecord) -> None:
        self.state.save_reconcile_record(self.config.cluster, record)
