"""Graceful removal: terminate lifecycle actions of both groups, dead-node cleanup, scale-in protection.

Manager (terminate hook of the manager group), under the cluster lease:
  safe now (:func:`autojoin.domain.guard.removal_check` on the live member list) → drain, demote, wait
  until the demotion has taken effect (the node has left Raft: asynchronous in Swarm), leave, ``node rm``,
  CONTINUE. Not safe now but a replacement is on its way (the group wants more than it has) → the action
  is recorded and kept alive with heartbeats; :meth:`RemovalService.tick` tries it again. The same wait
  while the swarm's health count disagrees with EC2 and Auto Scaling (a node counted healthy whose machine
  failed, or counted not healthy whose machine is in service and healthy): a retain is final, so it is
  never decided on a count that lags. Not safe and nothing will make it safe, or waited longer than
  ``removal_wait`` → ABANDON: the manager group's
  instance lifecycle policy retains the instance, ManagerRetained raises an alarm, and the log says what
  an operator must do.
Worker: drain (bounded by ``drain_timeout``, heartbeats meanwhile), leave, ``node rm``, CONTINUE.
A terminate into a warm pool is not a removal (CONTINUE). An action of another hook, another group or
another cluster is never completed.

:meth:`RemovalService.tick` (the schedule, and the reconciler) works the waiting removals, works the
instances waiting in Terminating:Wait that have no record (their event was lost: the same path as the
event, completed by instance id), removes the
nodes of instances that are gone (demoting dead managers first, when that is safe), and lifts scale-in
protection from at most one manager at a time — the one the guard chose — when the manager group wants
fewer than it has (managers launch protected, so Auto Scaling can only take the one autojoin released).
Every quorum-changing step holds the lease; a contender records its action and waits, never acts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from autojoin.domain.guard import choose_managers, removal_check
from autojoin.domain.model import (
    ClusterView,
    GroupInfo,
    InstanceInfo,
    LifecycleAction,
    LifecycleKind,
    LifecycleResult,
    Node,
    Role,
)
from autojoin.domain.verdict import margin
from autojoin.errors import (
    DemotionWouldLoseQuorum,
    LeaseLost,
    NodeNotDown,
    NoLeader,
    OrchestratorError,
    Unreachable,
)
from autojoin.ports import Clock, CompletionOutcome, Fleet, FleetRead, Member, Orchestrator, StateStore


class Outcome(StrEnum):
    REMOVED = "removed"  # left the swarm gracefully; CONTINUE
    NOT_MEMBER = "not_member"  # not (or no longer) in the swarm; CONTINUE
    WARM_POOL = "warm_pool"  # terminate into the warm pool: not a removal; CONTINUE
    WAITING = "waiting"  # not safe yet: recorded, hook kept alive
    RETAINED = "retained"  # cannot be made safe: ABANDON (the lifecycle policy retains it)
    IGNORED = "ignored"  # not autojoin's hook / group / kind: not completed
    GONE = "gone"  # the action is already finished


TERMINATING_WAIT = "Terminating:Wait"  # the only state in which a terminate hook's action is open


@dataclass(frozen=True)
class RemovalDecision:
    outcome: Outcome
    reason: str
    instance_id: str = ""
    role: Role | None = None
    az: str | None = None
    result: LifecycleResult | None = None
    completion: CompletionOutcome | None = None
    steps: tuple[str, ...] = ()  # what was done to the node, in order
    margin_after: int | None = None
    error: str | None = None
    operator_action: str | None = None  # set when the instance is retained
    also: tuple[RemovalDecision, ...] = ()  # waiting removals worked on the way (under the same lease)

    def to_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "instance_id": self.instance_id,
            "role": self.role.value if self.role else None,
            "az": self.az,
            "result": self.result.value if self.result else None,
            "completion": self.completion.value if self.completion else None,
            "steps": list(self.steps),
            "margin_after": self.margin_after,
            "error": self.error,
            "operator_action": self.operator_action,
            "also": [d.to_dict() for d in self.also],
        }


@dataclass(frozen=True)
class DeadNode:
    """A node whose instance is gone, and what cleanup did with it."""

    node_id: str
    instance_id: str
    role: Role
    removed: bool
    reason: str


@dataclass(frozen=True)
class TickReport:
    resumed: tuple[RemovalDecision, ...] = ()
    dead: tuple[DeadNode, ...] = ()
    released: str | None = None  # the manager whose scale-in protection was lifted
    blocked: str | None = None  # why no manager could be released although the group wants fewer
    margin: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "resumed": [d.to_dict() for d in self.resumed],
            "dead": [d.__dict__ for d in self.dead],
            "released": self.released,
            "blocked": self.blocked,
            "margin": self.margin,
            "error": self.error,
        }


@dataclass(frozen=True)
class RemovalConfig:
    cluster: str
    manager_group: str
    worker_group: str
    terminate_hook: str = "autojoin-terminate"
    min_managers: int = 3
    lease_ttl: int = 300
    removal_wait: float = 2700.0  # seconds a manager's removal may wait for a replacement, then ABANDON
    drain_timeout: float = 300.0  # seconds a worker's drain may take
    demote_wait: float = 120.0  # seconds to wait for a demotion to take effect
    node_down_wait: float = 60.0  # seconds to wait for a node that left to show Down (node rm)
    poll_interval: float = 2.0
    heartbeat_every: float = 60.0


class _Retry(Exception):
    """A step could not finish now (the removal waits and is tried again)."""


@dataclass
class _Run:
    """One removal attempt: the steps done, and the lease it renews between steps."""

    holder: str
    steps: list[str] = field(default_factory=list)


class RemovalService:
    def __init__(
        self,
        config: RemovalConfig,
        *,
        fleet: Fleet,
        orchestrator: Orchestrator,
        state: StateStore,
        clock: Clock,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.orchestrator = orchestrator
        self.state = state
        self.clock = clock

    # --- terminate lifecycle actions ---------------------------------------------------------------
    def handle(self, action: LifecycleAction, holder: str) -> RemovalDecision:
        cfg = self.config
        if action.kind is LifecycleKind.TEST:
            return RemovalDecision(Outcome.IGNORED, "test notification: nothing to complete")
        if action.kind is not LifecycleKind.TERMINATING:
            return RemovalDecision(Outcome.IGNORED, "not a terminate lifecycle action", action.instance_id)
        if action.hook != cfg.terminate_hook:
            return RemovalDecision(
                Outcome.IGNORED,
                f"hook {action.hook} is not autojoin's ({cfg.terminate_hook}): not completed",
                action.instance_id,
            )
        group = self.fleet.group(action.group)
        if group is None or group.cluster != cfg.cluster or group.role is None:
            return RemovalDecision(
                Outcome.IGNORED,
                f"group {action.group} is not a group of cluster {cfg.cluster}: not completed",
                action.instance_id,
            )
        if action.into_warm_pool:
            done = self.fleet.complete(action, LifecycleResult.CONTINUE)
            return RemovalDecision(
                Outcome.WARM_POOL,
                "terminate into the warm pool is not a removal",
                action.instance_id,
                group.role,
                result=LifecycleResult.CONTINUE,
                completion=done,
            )
        instance = self.fleet.instance(action.instance_id)
        if instance is not None and not instance.gone and instance.lifecycle_state != TERMINATING_WAIT:
            # the event says the instance is being terminated; its group says it is not (a stale or
            # forged event — found by fuzzing): nothing is drained or removed, nothing completed
            return RemovalDecision(
                Outcome.IGNORED,
                f"instance {action.instance_id} is {instance.lifecycle_state or 'in no lifecycle state'}, "
                f"not {TERMINATING_WAIT}: nothing removed",
                action.instance_id,
                group.role,
                instance.az,
                error="NotTerminating",
            )
        if group.role is Role.WORKER:
            return self._remove_worker(action)
        return self._remove_manager(action, holder, None)

    # --- workers -----------------------------------------------------------------------------------
    def _remove_worker(self, action: LifecycleAction) -> RemovalDecision:
        iid = action.instance_id
        az = self._az(iid)
        steps: list[str] = []
        try:
            member = _member_of(self.orchestrator.members(), iid)
        except (NoLeader, Unreachable) as exc:
            # the cluster cannot drain anything; the worker can still leave on its own
            self._leave(iid, steps)
            return self._complete(
                action,
                Outcome.REMOVED,
                f"cluster unavailable ({type(exc).__name__}): left without drain",
                Role.WORKER,
                az,
                steps,
                error=type(exc).__name__,
            )
        if member is None:
            return self._complete(action, Outcome.NOT_MEMBER, "not a swarm member", Role.WORKER, az, steps)
        try:
            drained = self._drain(action, member, steps)
            self._leave(iid, steps)
            self._rm(member.node_id, steps)
        except OrchestratorError as exc:
            return self._complete(
                action,
                Outcome.REMOVED,
                f"removal incomplete ({type(exc).__name__}); the reconciler removes the node once it is Down",
                Role.WORKER,
                az,
                steps,
                error=type(exc).__name__,
            )
        why = "drained, left and removed" if drained else "drain timed out; left and removed"
        return self._complete(action, Outcome.REMOVED, why, Role.WORKER, az, steps)

    def _drain(self, action: LifecycleAction | None, member: Member, steps: list[str]) -> bool:
        if member.available:
            self.orchestrator.drain(member.node_id)
        steps.append("drain")
        waited = since_beat = 0.0
        while self.orchestrator.running_tasks(member.node_id) > 0:
            if waited >= self.config.drain_timeout:
                return False
            self.clock.sleep(self.config.poll_interval)
            waited += self.config.poll_interval
            since_beat += self.config.poll_interval
            if action is not None and since_beat >= self.config.heartbeat_every:
                self.fleet.heartbeat(action)
                since_beat = 0.0
        return True

    # --- managers ----------------------------------------------------------------------------------
    def _remove_manager(
        self, action: LifecycleAction, holder: str, since: datetime | None
    ) -> RemovalDecision:
        cfg = self.config
        if not self.state.acquire_lease(cfg.cluster, holder, cfg.lease_ttl):
            other = self.state.lease_holder(cfg.cluster) or "another change"
            return self._wait(action, since, f"the cluster lease is held by {other}", "LeaseHeld")
        try:
            # this removal and every one that waits are worked together, in the order the guard would
            # choose: when not all of them can go, the ones kept are those whose removal would hurt most
            decisions = self._work(holder, (action, since))
        finally:
            self.state.release_lease(cfg.cluster, holder)
        mine = decisions.pop(action.instance_id)
        return replace(mine, also=tuple(decisions.values())) if decisions else mine

    def _work(
        self, holder: str, current: tuple[LifecycleAction, datetime | None] | None = None
    ) -> dict[str, RemovalDecision]:
        """Work the waiting removals (and ``current``) under the lease the caller holds."""
        cfg = self.config
        queue: dict[str, tuple[LifecycleAction, datetime | None]] = {}
        for waiting, started in self.state.removals(cfg.cluster):
            if current is not None and waiting.instance_id == current[0].instance_id:
                queue[waiting.instance_id] = (current[0], started)  # keep when it started waiting
                continue
            instance = self.fleet.instance(waiting.instance_id)
            if instance is None or instance.gone or instance.lifecycle_state != "Terminating:Wait":
                self.state.remove_removal(cfg.cluster, waiting.instance_id)
                continue
            queue[waiting.instance_id] = (waiting, started)
        if current is not None and current[0].instance_id not in queue:
            queue[current[0].instance_id] = current
        out: dict[str, RemovalDecision] = {}
        lost: LeaseLost | None = None
        for iid in self._order(list(queue)):
            action, since = queue[iid]
            if lost is not None:
                out[iid] = self._wait(action, since, str(lost), "LeaseLost")
                continue
            try:
                out[iid] = self._remove_manager_leased(action, _Run(holder), since)
            except LeaseLost as exc:
                lost = exc
                out[iid] = self._wait(action, since, str(exc), "LeaseLost")
        return out

    def _order(self, instance_ids: list[str]) -> list[str]:
        """Several managers to remove: the ones the guard would take first go first."""
        if len(instance_ids) < 2:
            return instance_ids
        try:
            members = self.orchestrator.members()
        except OrchestratorError:
            return instance_ids
        choice = choose_managers(
            self.view(members), instance_ids, len(instance_ids), self.config.min_managers
        )
        return [*choice.allowed, *(i for i in instance_ids if i not in choice.allowed)]

    def _remove_manager_leased(
        self, action: LifecycleAction, run: _Run, since: datetime | None
    ) -> RemovalDecision:
        iid = action.instance_id
        az = self._az(iid)
        try:
            members = self.orchestrator.members()
        except NoLeader:
            return self._wait(action, since, "the swarm has no leader: nothing can change", "NoLeader")
        except Unreachable:
            return self._wait(action, since, "no manager of the swarm answers", "Unreachable")
        member = _member_of(members, iid)
        if member is None:
            return self._complete(action, Outcome.NOT_MEMBER, "not a swarm member", Role.MANAGER, az, [])
        view = self.view(members)
        if member.role is Role.MANAGER or member.in_raft:
            problem = removal_check(view, iid, self.config.min_managers)
            if problem is not None:
                if self._replacement_expected(iid):
                    return self._wait(action, since, f"not safe yet: it {problem}; a replacement is coming")
                flux = self._count_in_flux(view)
                if flux is not None:
                    # the swarm's health count lags what happened (its heartbeats time out after seconds, a
                    # leader election restarts that grace, a new manager shows reachable a moment after it
                    # joined): a retain is final, so it is only decided on a count EC2 and Auto Scaling agree
                    # with; until then the removal waits (bounded by removal_wait) and is tried again
                    lags = f"not safe by the swarm's count: it {problem}; but the count lags: {flux}"
                    return self._wait(action, since, lags)
                return self._retain(
                    action,
                    f"cannot be made safe: it {problem}, and no replacement is "
                    "coming (the manager group has what it wants)",
                    az,
                )
        try:
            self._demote_and_remove(action, member, run)
        except _Retry as exc:
            return self._wait(action, since, str(exc), "Retry")
        except DemotionWouldLoseQuorum:
            return self._wait(
                action, since, "the swarm refused the demotion (quorum)", "DemotionWouldLoseQuorum"
            )
        except (NoLeader, Unreachable) as exc:
            return self._wait(
                action, since, f"the swarm stopped answering ({type(exc).__name__})", type(exc).__name__
            )
        after = margin(view.without([iid]))
        decision = self._complete(
            action,
            Outcome.REMOVED,
            "demoted, left and removed",
            Role.MANAGER,
            az,
            run.steps,
            margin_after=after,
        )
        self.save_snapshot()
        return decision

    def _demote_and_remove(self, action: LifecycleAction | None, member: Member, run: _Run) -> None:
        """Drain (when alive), demote, wait until Raft let it go, leave, node rm. Raises _Retry."""
        iid = member.instance_id or member.labels.get("instance-id", "")
        if member.ready and member.available:
            self.orchestrator.drain(member.node_id)
            run.steps.append("drain")
        if member.role is Role.MANAGER:
            self._renew(run)
            self.orchestrator.demote(member.node_id)
            run.steps.append("demote")
        self._await_demotion(action, member.node_id)
        run.steps.append("demotion-effective")
        self._renew(run)
        if iid:
            self._leave(iid, run.steps)
        self._rm(member.node_id, run.steps)

    def _await_demotion(self, action: LifecycleAction | None, node_id: str) -> None:
        waited = since_beat = 0.0
        while True:
            now = next((m for m in self.orchestrator.members() if m.node_id == node_id), None)
            if now is None or (now.role is Role.WORKER and not now.in_raft):
                return
            if waited >= self.config.demote_wait:
                raise _Retry(f"the demotion of {node_id} has not taken effect after {waited:.0f}s")
            self.clock.sleep(self.config.poll_interval)
            waited += self.config.poll_interval
            since_beat += self.config.poll_interval
            if action is not None and since_beat >= self.config.heartbeat_every:
                self.fleet.heartbeat(action)
                since_beat = 0.0

    def _leave(self, instance_id: str, steps: list[str]) -> None:
        try:
            self.orchestrator.leave(instance_id)
            steps.append("leave")
        except Unreachable:
            steps.append("leave-skipped-unreachable")  # a dead machine: its node goes Down by itself

    def _rm(self, node_id: str, steps: list[str]) -> None:
        waited = 0.0
        while True:
            try:
                self.orchestrator.remove(node_id)
                steps.append("rm")
                return
            except NodeNotDown:
                if waited >= self.config.node_down_wait:
                    steps.append("rm-deferred")  # dead-node cleanup removes it once Down
                    return
            self.clock.sleep(self.config.poll_interval)
            waited += self.config.poll_interval

    def _renew(self, run: _Run) -> None:
        if not self.state.acquire_lease(self.config.cluster, run.holder, self.config.lease_ttl):
            raise LeaseLost(self.config.cluster, run.holder)

    def _count_in_flux(self, view: ClusterView) -> str | None:
        """Where the swarm's health of a manager disagrees with its machine, or None: a node counted healthy
        whose machine failed (EC2 stopped it, Auto Scaling marked it Unhealthy), or a node counted not
        healthy whose machine is in service and healthy."""
        machines = {i.instance_id: i for i in self.fleet.instances(self.config.manager_group)}
        lags = []
        for node in sorted(view.managers(), key=lambda n: n.instance_id):
            machine = machines.get(node.instance_id)
            if machine is None:
                continue
            failed = _machine_failed(machine)
            if node.healthy and failed is not None:
                lags.append(f"{node.instance_id} counts healthy though {failed}")
            elif not node.healthy and failed is None and machine.lifecycle_state == "InService":
                lags.append(
                    f"{node.instance_id} counts not healthy though its machine is in service and healthy"
                )
        return "; ".join(lags) or None

    def _replacement_expected(self, instance_id: str) -> bool:
        """The manager group wants more instances than it has besides this one, or one is launching."""
        group = self.fleet.group(self.config.manager_group)
        if group is None:
            return False
        live = [
            i
            for i in self.fleet.instances(group.name)
            if i.instance_id != instance_id and not i.gone and _capacity_state(i)
        ]
        launching = any((i.lifecycle_state or "").startswith("Pending") for i in live)
        return launching or group.desired > len(live)

    # --- outcomes ----------------------------------------------------------------------------------
    def _wait(
        self, action: LifecycleAction, since: datetime | None, why: str, error: str | None = None
    ) -> RemovalDecision:
        now = self.clock.now()
        started = self.state.add_removal(self.config.cluster, action, since or now)
        waited = (now - started).total_seconds()
        if waited >= self.config.removal_wait:
            return self._retain(
                action, f"waited {waited:.0f}s and it is still not safe: {why}", self._az(action.instance_id)
            )
        if not self.fleet.heartbeat(action):
            self.state.remove_removal(self.config.cluster, action.instance_id)
            return RemovalDecision(
                Outcome.GONE, "lifecycle action already finished", action.instance_id, Role.MANAGER
            )
        return RemovalDecision(
            Outcome.WAITING,
            f"{why} (waiting {waited:.0f}s of {self.config.removal_wait:.0f}s; hook kept alive)",
            action.instance_id,
            Role.MANAGER,
            self._az(action.instance_id),
            error=error,
        )

    def _retain(self, action: LifecycleAction, why: str, az: str | None) -> RemovalDecision:
        self.state.remove_removal(self.config.cluster, action.instance_id)
        done = self.fleet.complete(action, LifecycleResult.ABANDON)
        iid = action.instance_id
        todo = (
            f"{iid} is retained (lifecycle state Retained) and is still a swarm manager. Restore the cluster "
            "(raise the manager group's desired capacity, or wait for replacements to join), then remove "
            "it: "
            f"`docker node demote <its node>` on a manager, `docker swarm leave` on {iid}, `docker node rm`, "
            f"and `aws autoscaling terminate-instance-in-auto-scaling-group --instance-id {iid} "
            f"--no-should-decrement-desired-capacity` (autojoin's terminate hook then finishes it)."
        )
        return RemovalDecision(
            Outcome.RETAINED,
            why,
            iid,
            Role.MANAGER,
            az,
            LifecycleResult.ABANDON,
            done,
            operator_action=todo,
        )

    def _complete(  # noqa: PLR0917 - one decision, every field
        self,
        action: LifecycleAction,
        outcome: Outcome,
        why: str,
        role: Role,
        az: str | None,
        steps: Sequence[str],
        *,
        error: str | None = None,
        margin_after: int | None = None,
    ) -> RemovalDecision:
        self.state.remove_removal(self.config.cluster, action.instance_id)
        done = self.fleet.complete(action, LifecycleResult.CONTINUE)
        return RemovalDecision(
            outcome,
            why,
            action.instance_id,
            role,
            az,
            LifecycleResult.CONTINUE,
            done,
            tuple(steps),
            margin_after,
            error,
        )

    # --- the periodic pass -------------------------------------------------------------------------
    def tick(self, holder: str) -> TickReport:
        """Waiting removals, dead-node cleanup, scale-in protection (see the module docstring). The
        groups are read once after the waiting removals were worked, and again only if the sweep
        changed something."""
        cfg = self.config
        resumed = tuple(self.resume_waiting(holder))
        read = self.fleet.read_cluster(cfg.cluster)
        swept = tuple(self.sweep_unrecorded(holder, read))
        if swept:
            read = self.fleet.read_cluster(cfg.cluster)
        resumed += swept
        try:
            members = list(self.orchestrator.members())
        except (NoLeader, Unreachable) as exc:
            return TickReport(resumed, error=type(exc).__name__)
        dead = tuple(self.remove_dead_nodes(holder, members, read))
        if dead and any(d.removed for d in dead):
            members = list(self.orchestrator.members())
        view = self.view(members, read)
        self.state.save_snapshot(view)
        released, blocked = self.release_surplus(holder, view, read)
        return TickReport(resumed, dead, released, blocked, margin(view))

    def resume_waiting(self, holder: str) -> list[RemovalDecision]:
        """Try the waiting removals again, under the lease (nothing when another change holds it: that
        change works them itself)."""
        cfg = self.config
        if not self.state.removals(cfg.cluster):
            return []
        if not self.state.acquire_lease(cfg.cluster, holder, cfg.lease_ttl):
            return []
        try:
            return list(self._work(holder).values())
        finally:
            self.state.release_lease(cfg.cluster, holder)

    def sweep_unrecorded(self, holder: str, read: FleetRead | None = None) -> list[RemovalDecision]:
        """Work the instances of the cluster's groups that wait in Terminating:Wait with no removal record:
        their terminate event was lost (EventBridge, a failed invocation). Each is worked exactly as the
        event of autojoin's own terminate hook would be (:meth:`handle`), completed by instance id (it has
        no token). A duplicate or late event afterwards finds the action already finished."""
        cfg = self.config
        recorded = {a.instance_id for a, _ in self.state.removals(cfg.cluster)}
        read = self.fleet.read_cluster(cfg.cluster) if read is None else read
        out: list[RemovalDecision] = []
        for group in read.groups:
            if group.role is None:
                continue
            for i in read.instances(group.name):
                if i.lifecycle_state != "Terminating:Wait" or i.instance_id in recorded:
                    continue
                action = LifecycleAction(
                    kind=LifecycleKind.TERMINATING,
                    group=group.name,
                    instance_id=i.instance_id,
                    hook=cfg.terminate_hook,
                )
                decision = self.handle(action, holder)
                recorded |= {decision.instance_id, *(d.instance_id for d in decision.also)}
                out += [replace(decision, also=()), *decision.also]
        return out

    def remove_dead_nodes(
        self, holder: str, members: Sequence[Member] | None = None, read: FleetRead | None = None
    ) -> list[DeadNode]:
        """Remove the nodes whose instance is gone (terminated, or unknown to EC2) and that show Down:
        a dead manager is demoted first, when the remaining voters keep a quorum. Holds the lease for the
        whole pass (returns nothing when another change holds it). The reconciler's entry point."""
        cfg = self.config
        members = list(self.orchestrator.members()) if members is None else list(members)
        candidates = [m for m in members if not m.ready and self._instance_gone(m, read)]
        if not candidates:
            return []
        if not self.state.acquire_lease(cfg.cluster, holder, cfg.lease_ttl):
            return []
        out: list[DeadNode] = []
        try:
            view = self.view(members, read)
            for m in candidates:
                iid = _instance_id(m)
                if m.role is Role.MANAGER:
                    problem = removal_check(view, iid, cfg.min_managers)
                    if problem is not None:
                        out.append(DeadNode(m.node_id, iid, m.role, False, f"kept: it {problem}"))
                        continue
                run = _Run(holder)
                try:
                    self._demote_and_remove(None, m, run)
                except (_Retry, OrchestratorError) as exc:
                    out.append(DeadNode(m.node_id, iid, m.role, False, f"not removed yet: {exc}"))
                    continue
                view = view.without([iid])
                out.append(DeadNode(m.node_id, iid, m.role, "rm" in run.steps, " ".join(run.steps)))
        finally:
            self.state.release_lease(cfg.cluster, holder)
        return out

    def release_surplus(
        self, holder: str, view: ClusterView | None = None, read: FleetRead | None = None
    ) -> tuple[str | None, str | None]:
        """When the manager group wants fewer managers than it has, lift scale-in protection from the one
        manager the guard would remove first — only when that removal is safe now, and only one at a time.
        When it wants at least what it has, put protection back on any manager released earlier.
        Returns (released instance, why blocked)."""
        cfg = self.config
        group = read.group(cfg.manager_group) if read is not None else None
        if group is None:
            read = None  # not among the cluster's groups read: ask for it by name
            group = self.fleet.group(cfg.manager_group)
        if group is None:
            return None, None
        rows = read.instances(group.name) if read is not None else self.fleet.instances(group.name)
        instances = [i for i in rows if not i.gone]
        live = [i for i in instances if _capacity_state(i)]
        in_service = [i for i in live if i.lifecycle_state == "InService"]
        released = [i.instance_id for i in in_service if not i.protected_from_scale_in]
        surplus = len(live) - group.desired
        if surplus <= 0:
            if released:
                self.fleet.set_protection(group.name, released, True)
            return None, None
        busy = [
            i for i in instances if not _capacity_state(i) and (i.lifecycle_state or "").startswith("Termin")
        ]
        if released or busy or len(in_service) < len(live):
            return None, None  # one at a time: the released one (or a launch) is still under way
        if not self.state.acquire_lease(cfg.cluster, holder, cfg.lease_ttl):
            return None, None
        try:
            if view is None:
                view = self.view(self.orchestrator.members())
            choice = choose_managers(view, [i.instance_id for i in in_service], 1, cfg.min_managers)
            if not choice.allowed:
                reasons = "; ".join(sorted(set(choice.refused.values()))) or "no manager to offer"
                return None, (
                    f"the manager group wants {group.desired} and has {len(live)}: "
                    f"no manager may go ({reasons})"
                )
            victim = choice.allowed[0]
            self.fleet.set_protection(group.name, [victim], False)
            return victim, None
        finally:
            self.state.release_lease(cfg.cluster, holder)

    # --- helpers -----------------------------------------------------------------------------------
    def view(self, members: Sequence[Member], read: FleetRead | None = None) -> ClusterView:
        return view_of(self.config.cluster, members, self._zones(read), self.clock.now())

    def save_snapshot(self) -> None:
        try:
            members = self.orchestrator.members()
        except OrchestratorError:
            return
        self.state.save_snapshot(self.view(members))

    def _zones(self, read: FleetRead | None = None) -> tuple[str, ...]:
        groups: Sequence[GroupInfo] = read.groups if read else self.fleet.cluster_groups(self.config.cluster)
        return tuple(sorted({z for g in groups if g.role is Role.MANAGER for z in g.zones}))

    def _az(self, instance_id: str) -> str | None:
        info = self.fleet.instance(instance_id)
        return info.az if info else None

    def _instance_gone(self, member: Member, read: FleetRead | None = None) -> bool:
        iid = _instance_id(member)
        if not iid.startswith("i-"):
            return False  # not labelled by autojoin: not ours to judge
        info = read.find(iid) if read is not None else None
        if info is None:  # not in a group read (or no read): ask EC2 whether the machine still exists
            info = self.fleet.instance(iid)
        return info is None or info.gone


def _machine_failed(info: InstanceInfo) -> str | None:
    """How EC2 or Auto Scaling says the machine failed (not running, or marked Unhealthy), or None."""
    if info.state != "running":
        return f"its machine is {info.state} (EC2)"
    if not info.healthy:
        return "Auto Scaling marked its machine Unhealthy"
    return None


def view_of(cluster: str, members: Sequence[Member], zones: Sequence[str], taken_at: datetime) -> ClusterView:
    """The cluster view of a member list (the same shape the launch path and the reconciler save)."""
    nodes = []
    for m in members:
        labels = m.labels
        nodes.append(
            Node(
                instance_id=_instance_id(m),
                role=Role.MANAGER if (m.role is Role.MANAGER or m.in_raft) else Role.WORKER,
                az=labels.get("az", "unknown"),
                healthy=m.ready and m.reachable,
                group=labels.get("asg", ""),
                node_id=m.node_id,
                address=m.address,
                instance_type=labels.get("instance-type"),
                leader=m.leader,
                reachable=m.reachable,
                available=m.available,
            )
        )
    return ClusterView(cluster=cluster, nodes=tuple(nodes), zones=tuple(zones), taken_at=taken_at)


def _instance_id(m: Member) -> str:
    return m.instance_id or m.labels.get("instance-id") or m.hostname


def _member_of(members: Sequence[Member], instance_id: str) -> Member | None:
    return next((m for m in members if _instance_id(m) == instance_id), None)


def _capacity_state(i: InstanceInfo) -> bool:
    state = i.lifecycle_state or "InService"
    return state == "InService" or state.startswith("Pending")
