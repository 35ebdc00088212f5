"""on_launch: decide a new instance's role, hand it its role's token, have it join, label it, complete.

Flow for one launch lifecycle action (docs/token-delivery.md has the security side):

1. Not a join → complete as AWS expects and say why: TEST_NOTIFICATION (nothing to complete), a launch
   into a warm pool (CONTINUE). A group that is not this cluster's → ignored, never completed by us.
2. The role comes from the group's tags (autojoin:cluster / autojoin:role) — never from the instance.
3. No cluster yet: a manager claims the bootstrap (conditional write; exactly one wins) and runs init;
   everyone else is recorded as pending (with a heartbeat) and joined by whoever finishes the bootstrap
   (or, for launches a lost event left behind, by the reconciler).
4. The event's instance must be a member of the event's group (else: ignored), and a ticket is only ever
   written for it while it is in Pending:Wait (a late duplicate may find it a member already: labelled
   and completed again, nothing offered). A pending record is worked again only for an instance of its
   group that is still launching or in service, with the role read again from the group's tags.
5. Join: put a read-once ticket in the instance's own hand-off slot, have the node take it and join,
   withdraw whatever is left; a refused (just-rotated) token is refreshed and tried once more, and a
   token refused twice (a rotation is half-way) defers the launch rather than abandon it. Managers
   launched together join in an order that never lowers the AZ losses they survive (``_joins_first``).
6. Verify the node id the node reported: it must be a node that was not in the swarm before this join,
   with the expected role, labelled for no other instance — a node may report any id. Then wait for it
   to be Ready, label it, CONTINUE. Any other failure to join → ABANDON (the group replaces the
   instance): the safe result of a launch hook. A join whose answer was lost (the agent died half way)
   is resolved by asking the node's daemon (the orchestrator); the cluster not answering after the node
   joined keeps the launch pending; a retry that finds the node already in the swarm but unlabelled (an
   earlier try died before labelling) takes that node when it is a member with the right role and no
   instance's label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from autojoin.domain.guard import removal_check
from autojoin.domain.model import (
    ClusterView,
    GroupInfo,
    InstanceInfo,
    LifecycleAction,
    LifecycleKind,
    LifecycleResult,
    Role,
)
from autojoin.domain.quorum import zone_failures_tolerated
from autojoin.errors import (
    AlreadyInSwarm,
    InvalidJoinToken,
    JoinDeferred,
    NodeNotReady,
    NoLeader,
    OrchestratorError,
    SecretMissing,
    Unreachable,
)
from autojoin.ports import (
    Clock,
    CompletionOutcome,
    Fleet,
    HandOff,
    JoinTicket,
    Member,
    Orchestrator,
    StateStore,
    TokenVault,
)
from autojoin.services.removal import view_of

SWARM_PORT = 2377
PENDING_WAIT = "Pending:Wait"
# a pending record is worked only for an instance still launching, or in service (the reconciler records an
# in-service instance the swarm lost, to join it again): never one terminating, detaching or on standby
REJOINABLE = frozenset({PENDING_WAIT, "InService"})


class Outcome(StrEnum):
    JOINED = "joined"
    BOOTSTRAPPED = "bootstrapped"
    ALREADY_MEMBER = "already_member"
    PENDING = "pending"
    WARM_POOL = "warm_pool"
    IGNORED = "ignored"
    GONE = "gone"
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class LaunchDecision:
    outcome: Outcome
    reason: str
    instance_id: str = ""
    role: Role | None = None
    az: str | None = None
    result: LifecycleResult | None = None  # what autojoin completed the action with, if it did
    completion: CompletionOutcome | None = None
    node_id: str | None = None
    error: str | None = None  # the error type when the outcome is a failure
    also_joined: tuple[LaunchDecision, ...] = field(default_factory=tuple)  # pending ones finished here

    def to_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "instance_id": self.instance_id,
            "role": self.role.value if self.role else None,
            "az": self.az,
            "result": self.result.value if self.result else None,
            "completion": self.completion.value if self.completion else None,
            "node_id": self.node_id,
            "error": self.error,
            "also_joined": [d.to_dict() for d in self.also_joined],
        }


@dataclass(frozen=True)
class LaunchConfig:
    cluster: str
    handoff_ttl: int = 900
    join_wait: float = 60.0
    poll_interval: float = 2.0
    join_timeout: float = 120.0  # what one join may take on the node (the orchestrator's join timeout)
    margin: float = 30.0  # kept free after a join for its clean-up (withdraw the ticket, complete)
    min_managers: int = 3  # the guard's floor (MinManagers): which removals will go ahead without a join

    @property
    def join_budget(self) -> float:
        """Seconds one join needs, clean-up included: the function's timeout must exceed it
        (tests/template checks template.yaml), and no join starts with less time left."""
        return self.join_timeout + self.join_wait + self.margin


class LaunchService:
    def __init__(
        self,
        config: LaunchConfig,
        *,
        fleet: Fleet,
        vault: TokenVault,
        handoff: HandOff,
        orchestrator: Orchestrator,
        state: StateStore,
        clock: Clock,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.vault = vault
        self.handoff = handoff
        self.orchestrator = orchestrator
        self.state = state
        self.clock = clock

    # ---------------------------------------------------------------------------------------------
    def handle(
        self, action: LifecycleAction, *, time_left: Callable[[], float] | None = None
    ) -> LaunchDecision:
        """``time_left``: seconds left in this invocation (the Lambda context); pending launches are only
        started while a whole join budget remains, so every join's ``finally`` gets to run."""
        if action.kind is LifecycleKind.TEST:
            return LaunchDecision(Outcome.IGNORED, "test notification: nothing to complete")
        if action.kind is not LifecycleKind.LAUNCHING:
            return LaunchDecision(Outcome.IGNORED, "not a launch lifecycle action", action.instance_id)
        group = self.fleet.group(action.group)
        if group is None or group.cluster != self.config.cluster or group.role is None:
            return LaunchDecision(
                Outcome.IGNORED,
                f"group {action.group} is not a group of cluster {self.config.cluster}",
                action.instance_id,
            )
        role = group.role
        if action.into_warm_pool:
            done = self.fleet.complete(action, LifecycleResult.CONTINUE)
            return LaunchDecision(
                Outcome.WARM_POOL,
                "launch into the warm pool is not a join",
                action.instance_id,
                role,
                result=LifecycleResult.CONTINUE,
                completion=done,
            )
        instance = self.fleet.instance(action.instance_id)
        if instance is None or instance.gone:
            return LaunchDecision(Outcome.GONE, "instance is gone: nothing to do", action.instance_id, role)
        mismatch = _not_in_group(instance, action.group)
        if mismatch:
            return LaunchDecision(
                Outcome.IGNORED,
                mismatch,
                instance.instance_id,
                role,
                instance.az,
                error="NotLaunchingInGroup",
            )

        if not self.state.is_bootstrapped(self.config.cluster):
            if role is Role.MANAGER and self._claim_bootstrap(instance.instance_id):
                return self._bootstrap(action, group, instance, time_left)
            return self._wait(action, role, instance, "the cluster has no manager yet")
        # a ticket only for an instance the group is launching; a late duplicate of a finished launch may
        # still find the instance a member (labelled, completed again), but is offered nothing
        decision = self._join(
            action, group, role, instance, may_offer=instance.lifecycle_state == PENDING_WAIT
        )
        if decision.outcome in {Outcome.PENDING, Outcome.IGNORED}:
            return decision
        self.state.remove_pending(self.config.cluster, instance.instance_id)  # if an earlier try left it
        pending = self._finish_pending(time_left) if decision.outcome is Outcome.JOINED else ()
        return _with_also(decision, pending)

    def finish_pending(self, time_left: Callable[[], float] | None = None) -> tuple[LaunchDecision, ...]:
        """Work the pending list now: the reconciler's way to finish joins that a lost, failed or exhausted
        launch event left waiting (the same path a completed bootstrap or join takes). ``time_left`` as
        for ``handle``."""
        if not self.state.is_bootstrapped(self.config.cluster):
            return ()
        return self._finish_pending(time_left)

    # ---------------------------------------------------------------------------------------------
    def _claim_bootstrap(self, instance_id: str) -> bool:
        """Claim the cluster's first init; take over a claim whose owner is gone (its launch failed)."""
        cluster = self.config.cluster
        if self.state.claim_bootstrap(cluster, instance_id):
            return True
        owner = self.state.bootstrap_owner(cluster)
        if owner is not None:
            holder = self.fleet.instance(owner)
            if holder is not None and not holder.gone:
                return False
            self.state.release_bootstrap(cluster, owner)  # conditional: only if still unfinished and its
        return self.state.claim_bootstrap(cluster, instance_id)

    def _bootstrap(
        self,
        action: LifecycleAction,
        group: GroupInfo,
        instance: InstanceInfo,
        time_left: Callable[[], float] | None = None,
    ) -> LaunchDecision:
        cluster = self.config.cluster
        try:
            node_id = self.orchestrator.init(instance.instance_id, instance.private_ip or "")
            self.orchestrator.label(node_id, _labels(instance, group))
        except NodeNotReady as exc:
            # Still booting: keep the claim (this instance retries it) and the hook alive; the retry of the
            # invocation initialises the cluster. If this instance never comes up, the next manager takes
            # over the claim once it is gone.
            waiting = self._wait(action, Role.MANAGER, instance, "the first manager cannot run commands yet")
            if waiting.outcome is Outcome.GONE:
                self.state.release_bootstrap(cluster, instance.instance_id)
                return waiting
            raise JoinDeferred(
                f"{instance.instance_id} cannot run commands yet; the bootstrap waits"
            ) from exc
        except OrchestratorError as exc:
            self.state.release_bootstrap(cluster, instance.instance_id)
            return self._abandon(
                action, Role.MANAGER, instance, f"cluster init failed: {type(exc).__name__}", exc
            )
        self.state.mark_bootstrapped(cluster, instance.instance_id)
        self.state.remove_pending(cluster, instance.instance_id)  # if an earlier, deferred try left it
        done = self.fleet.complete(action, LifecycleResult.CONTINUE)
        decision = LaunchDecision(
            Outcome.BOOTSTRAPPED,
            "first manager: initialised the cluster",
            instance.instance_id,
            Role.MANAGER,
            instance.az,
            LifecycleResult.CONTINUE,
            done,
            node_id,
        )
        self._save_snapshot()
        return _with_also(decision, self._finish_pending(time_left))

    def _wait(
        self,
        action: LifecycleAction,
        role: Role,
        instance: InstanceInfo,
        why: str,
        *,
        error: str | None = None,
    ) -> LaunchDecision:
        self.state.add_pending(self.config.cluster, action, role)
        alive = self.fleet.heartbeat(action)
        if not alive:
            self.state.remove_pending(self.config.cluster, instance.instance_id)
            return LaunchDecision(
                Outcome.GONE, "lifecycle action already finished", instance.instance_id, role
            )
        return LaunchDecision(
            Outcome.PENDING,
            f"{why}: waiting (hook kept alive)",
            instance.instance_id,
            role,
            instance.az,
            error=error,
        )

    def _finish_pending(self, time_left: Callable[[], float] | None = None) -> tuple[LaunchDecision, ...]:
        out: list[LaunchDecision] = []
        for action, _recorded_role in self.state.pending(self.config.cluster):
            if time_left is not None and time_left() < self.config.join_budget:
                # not enough time for a whole join and its clean-up: the record stays for the next
                # invocation or the reconciler
                out.append(
                    LaunchDecision(
                        Outcome.PENDING, "not enough time left in this invocation", action.instance_id
                    )
                )
                continue
            group = self.fleet.group(action.group)
            instance = self.fleet.instance(action.instance_id)
            if (
                group is None
                or group.cluster != self.config.cluster
                or group.role is None
                or instance is None
                or instance.gone
                or _not_in_group(instance, action.group)
                or instance.lifecycle_state not in REJOINABLE
            ):
                self.state.remove_pending(self.config.cluster, action.instance_id)
                continue
            role = group.role  # read again from the group's tags: never trust the recorded role
            try:
                decision = self._join(action, group, role, instance)
            except JoinDeferred as exc:
                out.append(LaunchDecision(Outcome.PENDING, str(exc), instance.instance_id, role, instance.az))
                continue
            if decision.outcome is not Outcome.PENDING:  # still waiting: keep the record for a later try
                self.state.remove_pending(self.config.cluster, action.instance_id)
            out.append(decision)
        return tuple(out)

    def _join(
        self,
        action: LifecycleAction,
        group: GroupInfo,
        role: Role,
        instance: InstanceInfo,
        *,
        may_offer: bool = True,
    ) -> LaunchDecision:
        iid = instance.instance_id
        try:
            members = self.orchestrator.members()
        except (NoLeader, Unreachable) as exc:
            # The cluster, not the instance, is the problem: abandoning would only churn healthy instances.
            # Keep the hook alive; the join resumes when a leader is back (next launch, the reconciler), and
            # the hook's own timeout (DefaultResult ABANDON) bounds the wait.
            return self._wait(action, role, instance, _cluster_down(exc), error=type(exc).__name__)
        try:
            existing = _member_of(members, iid)
            if existing is not None and existing.role is role:
                node_id = existing.node_id
                outcome, reason = Outcome.ALREADY_MEMBER, "already a member with the right role"
            elif not may_offer:
                return LaunchDecision(
                    Outcome.IGNORED,
                    f"instance {iid} is {instance.lifecycle_state or 'in no lifecycle state'}, not "
                    f"{PENDING_WAIT}, and no member: nothing is offered",
                    iid,
                    role,
                    instance.az,
                    error="NotLaunchingInGroup",
                )
            else:
                first = self._joins_first(instance, group, role, members)
                if first is not None:
                    return self._wait(
                        action,
                        role,
                        instance,
                        f"a manager in {instance.az} now would leave the managers surviving fewer AZ "
                        f"losses; {first.instance_id} "
                        + ("leaving" if first.lifecycle_state == "Terminating:Wait" else "launching")
                        + f" in {first.az} goes first",
                        error="JoinOrder",
                    )
                try:
                    node_id = self._hand_off_and_join(iid, role, members)
                except AlreadyInSwarm:
                    node_id = self._adopt(iid, role, members)
                    outcome, reason = (
                        Outcome.ALREADY_MEMBER,
                        "an earlier try joined it (unlabelled): labelled",
                    )
                else:
                    if any(m.node_id == node_id for m in members):
                        raise _ForeignNode("the node reported the id of a node that was in the swarm before")
                    outcome, reason = Outcome.JOINED, f"joined as {role.value}"
            try:
                self._await_ready(node_id, role, iid)
                self.orchestrator.label(node_id, _labels(instance, group))
            except Unreachable as exc:
                # The node is in; the cluster stopped answering (the leader died, the others timed out):
                # not the instance's fault. Pending; the next try finds the node (by its label, or by
                # asking it: _adopt) and finishes.
                return self._wait(action, role, instance, _cluster_down(exc), error=type(exc).__name__)
        except NodeNotReady as exc:
            # The node is still booting (SSM not registered, user data not done): keep its hook alive and
            # let the invocation be retried, rather than abandon an instance that is merely early.
            waiting = self._wait(action, role, instance, "the node cannot run commands yet")
            if waiting.outcome is Outcome.GONE:
                return waiting
            raise JoinDeferred(f"{iid} cannot run commands yet; its launch stays pending") from exc
        except NoLeader as exc:
            return self._wait(action, role, instance, _cluster_down(exc), error=type(exc).__name__)
        except SecretMissing as exc:
            return self._abandon(action, role, instance, f"no {role.value} token in the vault", exc)
        except InvalidJoinToken as exc:
            # Refused twice, refreshed in between: a rotation is half-way (the swarm holds a token the
            # secret does not have yet). The rotation's own steps (retry, testSecret's re-sync) bring the
            # secret back to what the swarm holds: keep the hook alive and try again, never abandon.
            why = "the join token was refused twice (a rotation is under way)"
            waiting = self._wait(action, role, instance, why, error=type(exc).__name__)
            if waiting.outcome is Outcome.GONE:
                return waiting
            raise JoinDeferred(f"{iid}: {why}; its launch stays pending") from exc
        except OrchestratorError as exc:
            return self._abandon(action, role, instance, f"join failed: {type(exc).__name__}", exc)
        done = self.fleet.complete(action, LifecycleResult.CONTINUE)
        self._save_snapshot()
        return LaunchDecision(
            outcome, reason, iid, role, instance.az, LifecycleResult.CONTINUE, done, node_id
        )

    def _joins_first(
        self, instance: InstanceInfo, group: GroupInfo, role: Role, members: Sequence[Member]
    ) -> InstanceInfo | None:
        """Join order for managers that come and go together (a scale-out, a refresh, a replacement):
        when this manager joining now would lower the AZ losses the managers survive, and a change under
        way would let it join without that, it waits for that change; it stays pending (its hook kept
        alive) and is joined when that change is done (the next join, or the reconciler's pass). The
        changes it waits for:

        - another manager of the group launching in a zone whose join would not lower it (3→7 joined
          a, a, b then a stands 3-2-1, which survives no AZ loss, on the way to 3-2-2);
        - a manager of the group being removed (Terminating:Wait, still a voter) whose removal the guard
          allows now, without this join, and after which this join would not lower it (a replaced
          manager: 3-2-2 with the replacement joined before the old one left stands 4-2-2).

        "Lower" is judged twice: with every voter in Raft's N, a Down one too (a crashed manager whose
        removal has not run yet: a replacement joined beside it stands 2-2-3 plus a Down voter of 8, which
        survives no AZ loss where 2-2-2 plus it survived one), and once the Down voters are removed (the
        layout of the managers that are up). A join lowering either waits for a change that lowers neither.

        Never held back for a change that is not coming (a removal that waits for this very join, say),
        so no join waits for nothing. Costs no AWS call unless this join would lower the tolerance."""
        if role is not Role.MANAGER or not group.zones:
            return None
        layout = dict.fromkeys(group.zones, 0)
        down = 0  # voters not up (a crashed manager not removed yet): in Raft's N, but keep no quorum
        for m in members:
            if not (m.role is Role.MANAGER or m.in_raft):
                continue
            az = m.labels.get("az")
            if not (m.ready and m.reachable):
                down += 1
            elif az in layout:
                layout[az] += 1

        def tolerance(add: str, drop: Member | None = None, drop_az: str = "") -> tuple[int, int]:
            """AZ losses survived with the Down voters (Raft's N now) and once they are removed."""
            after = {**layout, add: layout.get(add, 0) + 1}
            gone = down
            if drop is not None and drop.ready and drop.reachable:
                after[drop_az] = max(after.get(drop_az, 0) - 1, 0)
            elif drop is not None:  # a Down voter leaving (counted in ``down``)
                gone = down - 1
            return zone_failures_tolerated(after, down=gone), zone_failures_tolerated(after)

        now = (zone_failures_tolerated(layout, down=down), zone_failures_tolerated(layout))

        def keeps(t: tuple[int, int]) -> bool:
            return t[0] >= now[0] and t[1] >= now[1]

        if keeps(tolerance(instance.az)):
            return None
        by_instance = {(m.instance_id or m.labels.get("instance-id")): m for m in members}
        view: ClusterView | None = None
        for other in self.fleet.instances(group.name):
            if other.instance_id == instance.instance_id or other.gone:
                continue
            if other.lifecycle_state == PENDING_WAIT and other.instance_id not in by_instance:
                if keeps(tolerance(other.az)):
                    return other
            elif other.lifecycle_state == "Terminating:Wait" and other.instance_id in by_instance:
                leaving = by_instance[other.instance_id]
                if not (leaving.role is Role.MANAGER or leaving.in_raft):
                    continue
                if not keeps(tolerance(instance.az, leaving, leaving.labels.get("az", other.az))):
                    continue
                if view is None:
                    view = view_of(self.config.cluster, members, group.zones, self.clock.now())
                if removal_check(view, other.instance_id, self.config.min_managers) is None:
                    return other
        return None

    def _hand_off_and_join(self, instance_id: str, role: Role, members: Sequence[Member]) -> str:
        addresses = tuple(
            f"{m.address}:{SWARM_PORT}"
            for m in members
            if m.role is Role.MANAGER and m.reachable and m.address
        )
        refreshed = False
        while True:
            ticket = JoinTicket(
                role, self.vault.token(role, refresh=refreshed), addresses, self.config.cluster
            )
            self.handoff.offer(instance_id, ticket, self.config.handoff_ttl)
            try:
                return self.orchestrator.join(instance_id, role)
            except InvalidJoinToken:
                if refreshed:
                    raise
                refreshed = True  # a rotation just happened: refresh the cached token, try once more
            finally:
                self.handoff.withdraw(instance_id)

    def _adopt(self, instance_id: str, role: Role, members: Sequence[Member]) -> str:
        """The instance is already in the swarm but no member is labelled for it: an earlier try joined it
        and died (or lost the cluster) before labelling. Its own daemon says which node it is; that node is
        taken only if it is a member with the expected role and no instance's label. Else AlreadyInSwarm."""
        node_id = self.orchestrator.joined_node(instance_id)
        member = next((m for m in members if m.node_id == node_id), None) if node_id else None
        if (
            member is None
            or member.role is not role
            or (member.instance_id or member.labels.get("instance-id"))
        ):
            raise AlreadyInSwarm(f"{instance_id} is in a swarm as no unlabelled {role.value} of this cluster")
        return member.node_id

    def _await_ready(self, node_id: str, role: Role, instance_id: str) -> None:
        waited = 0.0
        while True:
            member = next((m for m in self.orchestrator.members() if m.node_id == node_id), None)
            owner = None if member is None else (member.instance_id or member.labels.get("instance-id"))
            if owner is not None and owner != instance_id:
                raise _ForeignNode("the node reported the id of a node labelled for another instance")
            if member is not None and member.ready and member.role is role:
                return
            if waited >= self.config.join_wait:
                raise _NotReady(
                    f"node did not show Ready as {role.value} within {self.config.join_wait:.0f}s"
                )
            self.clock.sleep(self.config.poll_interval)
            waited += self.config.poll_interval

    def _abandon(
        self, action: LifecycleAction, role: Role, instance: InstanceInfo, reason: str, exc: Exception
    ) -> LaunchDecision:
        self.state.remove_pending(self.config.cluster, instance.instance_id)
        done = self.fleet.complete(action, LifecycleResult.ABANDON)
        return LaunchDecision(
            Outcome.ABANDONED,
            reason,
            instance.instance_id,
            role,
            instance.az,
            LifecycleResult.ABANDON,
            done,
            error=type(exc).__name__,
        )

    def _save_snapshot(self) -> None:
        try:
            members = self.orchestrator.members()
        except OrchestratorError:
            return
        groups = self.fleet.cluster_groups(self.config.cluster)
        zones = sorted({z for g in groups if g.role is Role.MANAGER for z in g.zones})
        self.state.save_snapshot(view_of(self.config.cluster, members, zones, self.clock.now()))


class _NotReady(OrchestratorError):
    """The node joined but never showed Ready with the expected role."""


class _ForeignNode(OrchestratorError):
    """The node id a node reported belongs to another node: never label it (the launch is abandoned)."""


def _not_in_group(instance: InstanceInfo, group: str) -> str:
    """Why ``instance`` is not a member of ``group`` ('' when it is)."""
    if instance.group != group:
        return f"instance {instance.instance_id} is not a member of group {group}: nothing is offered"
    return ""


def _cluster_down(exc: Exception) -> str:
    if isinstance(exc, NoLeader):
        return "the cluster has no leader (quorum lost)"
    return "no manager of the cluster answers"


def _member_of(members: Sequence[Member], instance_id: str) -> Member | None:
    return next((m for m in members if (m.instance_id or m.labels.get("instance-id")) == instance_id), None)


def _labels(instance: InstanceInfo, group: GroupInfo) -> dict[str, str]:
    labels = {"az": instance.az, "instance-id": instance.instance_id, "asg": group.name}
    if instance.instance_type:
        labels["instance-type"] = instance.instance_type
    return labels


def _with_also(decision: LaunchDecision, others: tuple[LaunchDecision, ...]) -> LaunchDecision:
    if not others:
        return decision
    return LaunchDecision(**{**decision.__dict__, "also_joined": decision.also_joined + others})
