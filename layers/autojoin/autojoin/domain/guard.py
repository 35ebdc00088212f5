"""The quorum guard's rules: which managers may leave and in which order, which workers go first.

Built on :mod:`autojoin.domain.verdict` (quorum and AZ-tolerance per removal) with two additions:

* the **floor**: healthy managers never go below ``min_managers`` (the stack's MinManagers). Removing a
  manager that is not healthy never lowers the healthy count, so a dead voter may always go (that only
  raises the margin);
* the **order**: among the removals that keep every rule, the one leaving the best layout
  (:func:`autojoin.domain.quorum.layout_key`) goes first, unhealthy managers before healthy ones, so
  5 managers 2-2-1 asked for 3 end 1-1-1, never 2-1-0.

Everything here works on the managers of a view (a handful), and on plain dicts for workers, so a
decision over 30,000 offered instances stays linear in their number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from autojoin.domain.model import ClusterView, Node, Role
from autojoin.domain.quorum import layout_key, quorum, zone_failures_tolerated
from autojoin.domain.verdict import margin, removal_problem


@dataclass(frozen=True)
class ManagerChoice:
    """``allowed`` may go now, in the order they should go; ``refused`` maps instance id -> reason."""

    allowed: tuple[str, ...]
    refused: dict[str, str] = field(default_factory=dict)
    margin_after: int = 0
    layout_after: dict[str, int] = field(default_factory=dict)


def managers_only(view: ClusterView) -> ClusterView:
    """The view restricted to its managers (what every manager rule looks at)."""
    return view.model_copy(update={"nodes": view.managers()})


def floor_problem(view: ClusterView, node: Node, min_managers: int) -> str | None:
    """Why removing ``node`` would take the healthy managers below the floor, or None."""
    if not node.healthy:
        return None
    healthy_after = len(view.managers(healthy_only=True)) - 1
    if healthy_after < min_managers:
        return f"would leave {healthy_after} healthy managers, below MinManagers {min_managers}"
    return None


def removal_check(view: ClusterView, instance_id: str, min_managers: int) -> str | None:
    """Why removing the manager ``instance_id`` from ``view`` now would break a rule, or None when it may.

    Rules: never the last manager; the healthy managers keep a quorum of the voters left and stay at or
    above ``min_managers``; a healthy manager's removal does not lower the worst-case AZ tolerance below
    the best that the remaining count allows (a dead voter never adds tolerance, so its removal is only
    checked for quorum). A node the view does not list as a manager may go.
    """
    view = managers_only(view)
    node = view.node(instance_id)
    if node is None:
        return None
    problem = floor_problem(view, node, min_managers)
    if problem is not None:
        return problem
    if not node.healthy:
        after = view.without([instance_id])
        total = len(after.managers())
        if total == 0:
            return "would remove the last manager"
        healthy = len(after.managers(healthy_only=True))
        if healthy < quorum(total):
            return f"would leave {healthy} healthy of {total} managers (quorum {quorum(total)})"
        return None
    floor = zone_failures_tolerated(view.manager_layout(healthy_only=False))
    return removal_problem(view, node, floor)


def choose_managers(view: ClusterView, offered: Sequence[str], want: int, min_managers: int) -> ManagerChoice:
    """Up to ``want`` of the ``offered`` managers that may go, best first (see the module docstring).

    Offered instances the view does not list as managers (not members, or already demoted) may go and
    come first. Each further manager is the one whose removal, after those chosen before it, keeps every
    rule of :func:`removal_check` and leaves the best layout; ties keep the offered order.
    """
    members = managers_only(view)
    known = members.index()
    order = {iid: i for i, iid in enumerate(dict.fromkeys(offered))}
    allowed = [iid for iid in order if iid not in known][:want]
    candidates = [known[iid] for iid in order if iid in known]
    remaining = members
    refused: dict[str, str] = {}
    while len(allowed) < want and candidates:
        best: tuple[object, Node] | None = None
        refused = {}
        for node in candidates:
            problem = removal_check(remaining, node.instance_id, min_managers)
            if problem is not None:
                refused[node.instance_id] = problem
                continue
            after = remaining.without([node.instance_id]).manager_layout(healthy_only=False)
            key = (node.healthy, layout_key(after), order[node.instance_id])
            if best is None or key < best[0]:  # type: ignore[operator]
                best = (key, node)
        if best is None:
            break
        chosen = best[1]
        allowed.append(chosen.instance_id)
        candidates.remove(chosen)
        remaining = remaining.without([chosen.instance_id])
    for node in candidates:
        if node.instance_id not in refused:
            problem = removal_check(remaining, node.instance_id, min_managers)
            refused[node.instance_id] = problem or f"not needed: {want} instance(s) asked for"
    return ManagerChoice(
        allowed=tuple(allowed),
        refused={k: refused[k] for k in order if k in refused},
        margin_after=margin(remaining),
        layout_after=remaining.manager_layout(healthy_only=False),
    )


def choose_workers(
    known: Mapping[str, Node],
    offered: Iterable[tuple[str, str]],
    capacity: Mapping[str, int] | None,
) -> list[str]:
    """Workers to terminate: per AZ as many as ``capacity`` asks (AZ balance is Auto Scaling's plan),
    drained or unhealthy nodes first, then the offered order. ``capacity`` None: every offered worker.

    ``known`` maps instance id -> node (a summarised snapshot lists only notable workers; the others are
    ordinary). An offered instance the swarm knows as a manager is never chosen here.
    """
    first: dict[str, list[str]] = {}
    rest: dict[str, list[str]] = {}
    for iid, az in offered:
        node = known.get(iid)
        if node is not None and node.role is Role.MANAGER:
            continue
        notable = node is not None and not (node.healthy and node.available)
        (first if notable else rest).setdefault(az, []).append(iid)
    out: list[str] = []
    zones = dict.fromkeys([*first, *rest])
    for az in zones:
        pool = first.get(az, []) + rest.get(az, [])
        n = len(pool) if capacity is None else capacity.get(az, 0)
        out += pool[:n]
    return out
