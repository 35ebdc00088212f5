"""The reconciler's decisions: zone health with hysteresis, tolerance now, drift, and the next rebalance step.

Pure: the service passes in what it observed and the time; nothing here reads a clock or talks to AWS.

Hysteresis (docs/reconcile.md): an AZ is marked *impaired* the first time it looks bad (it has cluster
nodes and none of them is healthy) — failing fast is safe, it only stops managers being placed there.
It is cleared only after it has looked good for ``recover_after`` seconds without a break. No
quorum-changing step is taken while any AZ of the manager group is impaired or changed state within
``recover_after`` seconds, so health that flaps causes no churn. An AZ without nodes gives no signal and
keeps its state.

Rebalancing (:func:`next_step`) takes at most one quorum-changing step per run, chosen from the
transition planner's safe plan (domain/transition.py): adds before removes. An add is a *surge*: the
manager group's desired capacity goes up by one, and Auto Scaling launches into its least-populated AZ —
so the reconciler adds only when that AZ is the one the plan wants. A remove retires one manager of an
over-full AZ through the group (its protection lifted, TerminateInstanceInAutoScalingGroup with the
desired capacity decremented) so that the terminate hook performs the graceful removal; never the leader
while another removal will do. Among equally good layouts the step is shown toward one it moves closer to
(the AZ it retires from or launches into), so its reason, goal and plan agree with what it does.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import permutations

from pydantic import Field

from autojoin.domain.model import ClusterView, Frozen, InstanceInfo, Node, Role
from autojoin.domain.placement import optimal_layout
from autojoin.domain.quorum import quorum, zone_failures_tolerated
from autojoin.domain.transition import plan_transition
from autojoin.errors import PlacementError

# --- zone health with hysteresis -------------------------------------------------------------------


class ZoneWatch(Frozen):
    """What the reconciler remembers of one AZ between runs."""

    impaired: bool = False
    changed_at: datetime | None = None  # when ``impaired`` last flipped
    good_since: datetime | None = None  # an impaired AZ looking good again since (recovery under way)


class Decision(Frozen):
    """One line of the reconciler's decision log (kept in the state table, shown by ``autojoin status``)."""

    at: datetime
    kind: str
    detail: str
    dry_run: bool = False


class ReconcileRecord(Frozen):
    """The reconciler's memory in the state table: zone watches, its own surge, its last decisions."""

    zones: dict[str, ZoneWatch] = Field(default_factory=dict)
    surge_from: int | None = None  # the manager target before the reconciler raised desired by one
    decisions: tuple[Decision, ...] = ()

    def logged(self, new: Sequence[Decision], keep: int = 20) -> ReconcileRecord:
        return self.model_copy(update={"decisions": (*self.decisions, *new)[-keep:]})


def zone_signals(view: ClusterView, zones: Collection[str]) -> dict[str, bool | None]:
    """Per AZ: True when it looks bad (it has nodes, none healthy), False when good, None without nodes."""
    out: dict[str, bool | None] = {}
    for z in zones:
        nodes = [n for n in view.nodes if n.az == z]
        out[z] = None if not nodes else not any(n.healthy for n in nodes)
    return out


def watch_zones(
    before: Mapping[str, ZoneWatch],
    signals: Mapping[str, bool | None],
    now: datetime,
    recover_after: float,
) -> dict[str, ZoneWatch]:
    """The zone watches after one observation (see the module docstring for the rules)."""
    out = dict(before)
    for z, bad in signals.items():
        w = out.get(z, ZoneWatch())
        if bad is None:
            pass
        elif bad:
            w = ZoneWatch(impaired=True, changed_at=now if not w.impaired else w.changed_at, good_since=None)
        elif w.impaired:
            since = w.good_since or now
            if (now - since).total_seconds() >= recover_after:
                w = ZoneWatch(impaired=False, changed_at=now)
            else:
                w = w.model_copy(update={"good_since": since})
        out[z] = w
    return dict(sorted(out.items()))


def impaired_zones(watches: Mapping[str, ZoneWatch]) -> tuple[str, ...]:
    return tuple(sorted(z for z, w in watches.items() if w.impaired))


def unsettled(
    watches: Mapping[str, ZoneWatch], zones: Collection[str], now: datetime, settle: float
) -> str | None:
    """Why no quorum-changing step may run now because of zone health, or None."""
    for z in sorted(zones):
        w = watches.get(z)
        if w is None:
            continue
        if w.impaired:
            return f"{z} is impaired" + (" (recovering)" if w.good_since else "")
        if w.changed_at is not None and (now - w.changed_at).total_seconds() < settle:
            ago = int((now - w.changed_at).total_seconds())
            return f"{z} recovered {ago}s ago (settling for {int(settle)}s)"
    return None


# --- tolerance now ---------------------------------------------------------------------------------


def zone_failures_now(view: ClusterView) -> int:
    """AZ losses the cluster survives now: every manager voter (Down ones too) counts in N, only healthy
    ones keep the quorum. Capped at the number of AZs minus one; 0 without quorum."""
    voters = view.managers()
    if not voters:
        return 0
    need = quorum(len(voters))
    healthy = view.manager_layout(healthy_only=True)
    up = sum(healthy.values())
    if up < need:
        return 0
    lost = 0
    k = 0
    for c in sorted(healthy.values(), reverse=True)[: max(len(healthy) - 1, 0)]:
        lost += c
        if up - lost < need:
            break
        k += 1
    return k


def quorum_margin(view: ClusterView) -> int:
    """Healthy managers minus quorum of all voters (negative: no quorum); 0 without managers."""
    voters = view.managers()
    return len(view.managers(healthy_only=True)) - quorum(len(voters)) if voters else 0


def best_tolerance(managers: int, zones: Sequence[str], impaired: Collection[str] = ()) -> int:
    """The worst-case AZ tolerance of the best layout of ``managers`` over the usable ``zones``."""
    if managers < 1 or not zones:
        return 0
    try:
        return zone_failures_tolerated(optimal_layout(managers, zones, impaired=impaired))
    except PlacementError:
        return 0


# --- drift: protection and labels -------------------------------------------------------------------


def expected_labels(node: Node, instance: InstanceInfo) -> dict[str, str]:
    """The labels on_launch puts on a node (services/launch.py ``_labels``)."""
    labels = {"az": instance.az, "instance-id": instance.instance_id, "asg": instance.group or ""}
    if instance.instance_type:
        labels["instance-type"] = instance.instance_type
    return labels


def wants_protection(node: Node | None, instance: InstanceInfo) -> bool | None:
    """Scale-in protection a manager instance should have: True for an InService manager member. None:
    no opinion (workers, instances not in service, not members) — the guard's termination policy and the
    launch path own those."""
    if node is None or node.role is not Role.MANAGER or instance.lifecycle_state != "InService":
        return None
    return True


# --- the next rebalance step ---------------------------------------------------------------------------


class StepKind(StrEnum):
    NONE = "none"  # at the goal
    WAIT = "wait"  # something must settle first
    LAUNCH = "launch"  # surge: desired + 1 so the group launches into ``az``
    RETIRE = "retire"  # lift protection of ``instance_id`` and terminate it through the group


@dataclass(frozen=True)
class ManagerGroup:
    """The manager group as the reconciler sees it."""

    name: str
    zones: tuple[str, ...]
    desired: int
    max_size: int
    instances: tuple[InstanceInfo, ...] = ()

    def capacity(self) -> tuple[InstanceInfo, ...]:
        """Instances that count towards capacity (Pending*, InService) and are not gone."""
        return tuple(
            i
            for i in self.instances
            if not i.gone and (i.lifecycle_state or "").split(":")[0] in {"Pending", "InService"}
        )

    def in_flight(self) -> tuple[InstanceInfo, ...]:
        return tuple(
            i
            for i in self.instances
            if not i.gone and (i.lifecycle_state or "").split(":")[0] in {"Pending", "Terminating"}
        )

    def next_launch_zones(self) -> tuple[str, ...]:
        """The AZs a balanced launch would pick: those with the fewest capacity members."""
        counts = {z: 0 for z in self.zones}
        for i in self.capacity():
            if i.az in counts:
                counts[i.az] += 1
        if not counts:
            return ()
        low = min(counts.values())
        return tuple(sorted(z for z, c in counts.items() if c == low))


@dataclass(frozen=True)
class RebalanceStep:
    kind: StepKind
    reason: str
    az: str | None = None
    instance_id: str | None = None
    target: int = 0
    goal: dict[str, int] = field(default_factory=dict)
    plan: tuple[str, ...] = ()  # the rest of the plan, "add us-east-1c -> 3-2-1 (tolerates 0)"

    def describe(self) -> str:
        who = f" {self.instance_id}" if self.instance_id else ""
        where = f"{who} in {self.az}" if self.az else ""
        return f"{self.kind.value}{where}: {self.reason}"


def surge_out(group: ManagerGroup, surge_from: int | None) -> bool:
    """Our own surge is in place: the group's desired capacity is the remembered target plus one."""
    return surge_from is not None and group.desired == surge_from + 1


def manager_target(group: ManagerGroup, surge_from: int | None) -> int:
    """The manager count to keep: the group's desired capacity, or what it was before our own surge."""
    if surge_out(group, surge_from):
        return group.desired - 1
    return group.desired


def _shape(layout: Mapping[str, int]) -> str:
    return "-".join(str(c) for c in layout.values())


def _victim(view: ClusterView, group: ManagerGroup, az: str) -> Node | None:
    """Which manager of ``az`` to retire: an unhealthy one first, never the leader while another will do,
    only one the group owns and has in service; then by instance id."""
    in_service = {i.instance_id for i in group.instances if i.lifecycle_state == "InService" and not i.gone}
    nodes = [n for n in view.managers() if n.az == az and n.instance_id in in_service]
    if not nodes:
        return None
    return sorted(nodes, key=lambda n: (n.healthy, n.leader, n.instance_id))[0]


def next_step(
    view: ClusterView,
    group: ManagerGroup,
    *,
    surge_from: int | None,
    impaired: Collection[str] = (),
    unsettled_reason: str | None = None,
    has_leader: bool = True,
    floor: int = 1,
) -> RebalanceStep:
    """The one quorum-changing step to take now toward the best layout, or why none is taken.

    ``floor`` (MinManagers): the target never goes below it while the cluster has that many managers —
    a group asked for fewer than the floor is held there (the quorum guard refuses such removals anyway,
    and a retire it refuses would only leave one more retained instance)."""
    target = max(manager_target(group, surge_from), min(floor, len(view.managers())))
    if not has_leader:
        return RebalanceStep(StepKind.WAIT, "the cluster has no leader", target=target)
    if target < 1 or not group.zones:
        return RebalanceStep(StepKind.NONE, "the manager group asks for no managers", target=target)
    if unsettled_reason:
        return RebalanceStep(StepKind.WAIT, unsettled_reason, target=target)
    busy = group.in_flight()
    if busy:
        states = ", ".join(f"{i.instance_id} {i.lifecycle_state}" for i in busy)
        return RebalanceStep(StepKind.WAIT, f"the manager group is busy ({states})", target=target)
    if len(group.capacity()) != group.desired:
        return RebalanceStep(
            StepKind.WAIT,
            f"the manager group has {len(group.capacity())} instances for a desired {group.desired}",
            target=target,
        )
    down = [n.instance_id for n in view.managers() if not n.healthy]
    if down:
        return RebalanceStep(
            StepKind.WAIT, f"unhealthy managers first ({', '.join(sorted(down))})", target=target
        )
    zones = tuple(sorted(set(group.zones) | {n.az for n in view.managers()}))
    current = view.model_copy(update={"zones": zones}).manager_layout(healthy_only=False)
    allowed = [z for z in zones if z in group.zones and z not in impaired]
    try:
        best = optimal_layout(target, zones, impaired=[z for z in zones if z not in allowed])
    except PlacementError as exc:
        return RebalanceStep(StepKind.WAIT, f"no layout for {target} managers: {exc}", target=target)
    goals = nearest_goals(current, best, allowed)
    goal = goals[0]
    if current in goals:
        return RebalanceStep(
            StepKind.NONE, f"at the best layout {_shape(current)}", target=target, goal=current
        )
    count = sum(current.values())
    # the planner's floor: every nearest goal is as tolerant as the first
    floor = min(zone_failures_tolerated(current), zone_failures_tolerated(goal))

    def safe(after: dict[str, int]) -> bool:
        return sum(after.values()) >= 1 and zone_failures_tolerated(after) >= floor

    # The step is chosen before the plan: its goal is the first nearest goal it moves toward, so that the
    # reason, goal and plan an operator reads agree with the instance retired or the AZ launched into.
    picks = group.next_launch_zones()
    retire: tuple[str, Node] | None = None
    if count > target and surge_from is not None:
        # a removal from an AZ over a nearest goal: never the leader while another removal will do (each
        # one is a move toward an equally good layout), then the most over-full AZ first, then by name
        victims = {z: v for z in zones if (v := _victim(view, group, z)) is not None}
        options = sorted(
            (v.leader, -(current[z] - g[z]), z, k)
            for k, g in enumerate(goals)
            for z, v in victims.items()
            if current[z] > g[z] and safe({**current, z: current[z] - 1})
        )
        if options:
            *_, az, k = options[0]
            goal = goals[k]
            retire = (az, victims[az])
    elif count == target:
        goal = next((g for g in goals if g[picks[0]] > current[picks[0]]), goal)
    try:
        plan = plan_transition(current, goal)
    except PlacementError as exc:
        return RebalanceStep(StepKind.WAIT, str(exc), target=target, goal=goal)
    lines = tuple(
        f"{s.action} {s.az} -> {_shape(s.layout_after)} (tolerates {s.tolerance.tolerates_zone_failures})"
        for s in plan.steps
    )

    if count > target and surge_from is None:
        return RebalanceStep(
            StepKind.WAIT,
            f"{count} managers for a desired {target}: a scale-in is the guard's (termination policy), "
            "not a rebalance",
            target=target,
            goal=goal,
            plan=lines,
        )
    if count > target:  # our surge is in place: the next step is a removal from an over-full AZ
        if retire is not None:
            az, victim = retire
            after = {**current, az: current[az] - 1}
            return RebalanceStep(
                StepKind.RETIRE,
                f"{_shape(current)} -> {_shape(after)} toward {_shape(goal)} "
                f"(tolerates {zone_failures_tolerated(after)})",
                az=az,
                instance_id=victim.instance_id,
                target=target,
                goal=goal,
                plan=lines,
            )
        return RebalanceStep(
            StepKind.WAIT,
            f"{count} managers for a target of {target}: no safe removal through {group.name}",
            target=target,
            goal=goal,
            plan=lines,
        )
    if count < target:
        return RebalanceStep(
            StepKind.WAIT,
            f"{count} managers joined for a target of {target}",
            target=target,
            goal=goal,
            plan=lines,
        )
    # count == target: add first. Not while our own surge is out (desired is the target plus one): its
    # instance is in service but is not a manager (its node was demoted or removed outside autojoin), and
    # another launch would raise desired a second time, after which the surge record no longer matches and
    # the higher count would become the target for good.
    if surge_out(group, surge_from):
        return RebalanceStep(
            StepKind.WAIT,
            f"our surge (desired {group.desired} for a target of {target}) is in service but only {count} "
            "managers are joined: a manager of the group was demoted or removed outside autojoin; no "
            "second launch (terminate the instance that is not a manager: the group launches another)",
            target=target,
            goal=goal,
            plan=lines,
        )
    # The group launches into one of its least-populated AZs: every one of them must be an AZ some nearest
    # best layout adds to, and safe to add to.
    fits = [
        p
        for p in picks
        if p in allowed and any(g[p] > current[p] for g in goals) and safe({**current, p: current[p] + 1})
    ]
    if not picks or fits != list(picks):
        wanted = sorted({z for g in goals for z in zones if g[z] > current[z]})
        return RebalanceStep(
            StepKind.WAIT,
            f"the plan adds in {' or '.join(wanted)} but {group.name} would launch into "
            f"{' or '.join(picks) or 'no AZ'}",
            target=target,
            goal=goal,
            plan=lines,
        )
    az = picks[0] if len(picks) == 1 else " or ".join(picks)
    after = {**current, picks[0]: current[picks[0]] + 1}
    return RebalanceStep(
        StepKind.LAUNCH,
        f"{_shape(current)} -> {_shape(after)} toward {_shape(goal)} "
        f"(tolerates {zone_failures_tolerated(after)})",
        az=az,
        target=target,
        goal=goal,
        plan=lines,
    )


def nearest_goals(
    current: Mapping[str, int], best: Mapping[str, int], allowed: Sequence[str]
) -> list[dict[str, int]]:
    """Every layout as good as ``best`` (its counts given to the ``allowed`` AZs in any order; the others
    get 0) that is fewest single-manager moves away from ``current``; ``best`` first when it is one."""
    values = [best[z] for z in allowed]
    out: dict[tuple[int, ...], dict[str, int]] = {}
    for perm in set(permutations(values)):
        layout = {z: 0 for z in current} | dict(zip(allowed, perm, strict=True))
        out[perm] = dict(sorted(layout.items()))

    def distance(layout: Mapping[str, int]) -> int:
        return sum(abs(layout.get(z, 0) - current.get(z, 0)) for z in set(layout) | set(current))

    low = min(distance(g) for g in out.values())
    found = [g for g in out.values() if distance(g) == low]
    canonical = dict(sorted(({z: 0 for z in current} | dict(best)).items()))
    found.sort(key=lambda g: (g != canonical, sorted(g.items())))
    return found
