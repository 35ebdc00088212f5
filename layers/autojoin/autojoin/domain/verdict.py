"""Scale-in verdicts: which candidate instances may leave the cluster now, and why the others may not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from autojoin.domain.model import ClusterView, Node, Role
from autojoin.domain.placement import optimal_layout
from autojoin.domain.quorum import quorum, zone_failures_tolerated


@dataclass(frozen=True)
class ScaleInVerdict:
    """``allowed`` may go now (in candidate order); ``refused`` maps instance id -> the rule it would break.

    ``unknown`` lists allowed candidates the view does not know (not members, so they may go).
    ``margin_after`` is healthy managers minus quorum once the allowed ones are gone.
    """

    allowed: tuple[str, ...]
    refused: dict[str, str]
    margin_after: int
    unknown: tuple[str, ...] = field(default=())


def best_zone_tolerance(managers: int, zones: Sequence[str]) -> int:
    """The worst-case AZ tolerance of the best layout of ``managers`` over ``zones``."""
    if managers < 1 or not zones:
        return 0
    return zone_failures_tolerated(optimal_layout(managers, zones))


def margin(view: ClusterView) -> int:
    """Healthy managers minus quorum (0 for a cluster without managers)."""
    total = len(view.managers())
    return len(view.managers(healthy_only=True)) - quorum(total) if total else 0


def removal_problem(view: ClusterView, node: Node, floor: int) -> str | None:
    """Why removing manager ``node`` from ``view`` would break a rule, or None when it may go.

    ``floor`` is the zone tolerance of the cluster before any of this scale-in's removals.
    """
    after = view.without([node.instance_id])
    total = len(after.managers())
    if total == 0:
        return "would remove the last manager"
    healthy = len(after.managers(healthy_only=True))
    if healthy < quorum(total):
        return f"would leave {healthy} healthy of {total} managers (quorum {quorum(total)})"
    layout = after.manager_layout(healthy_only=False)
    tol = zone_failures_tolerated(layout)
    needed = min(floor, best_zone_tolerance(total, list(layout)))
    if tol < needed:
        shape = "-".join(str(c) for c in layout.values())
        return (
            f"would leave {shape} over {len(layout)} AZs, surviving {tol} AZ "
            f"loss{'es' if tol != 1 else ''} where {total} managers can survive {needed}"
        )
    return None


def scale_in_verdict(view: ClusterView, candidates: Sequence[str]) -> ScaleInVerdict:
    """Which of ``candidates`` may be terminated now.

    Workers and instances the view does not know may always go. Managers are considered unhealthy first,
    then in candidate order; each may go only if, after it and every manager allowed before it are gone,
    the healthy managers still hold a quorum and the worst-case AZ tolerance is no lower than
    ``min(current tolerance, best tolerance possible with the remaining count over the view's AZs)``.
    The last manager never goes.
    """
    ordered = list(dict.fromkeys(candidates))
    floor = zone_failures_tolerated(view.manager_layout(healthy_only=False))
    go: set[str] = set()
    unknown: list[str] = []
    refused: dict[str, str] = {}
    managers: list[Node] = []
    for iid in ordered:
        node = view.node(iid)
        if node is None:
            unknown.append(iid)
            go.add(iid)
        elif node.role is Role.WORKER:
            go.add(iid)
        else:
            managers.append(node)
    managers.sort(key=lambda n: n.healthy)  # stable: unhealthy first, then candidate order
    remaining = view
    for node in managers:
        problem = removal_problem(remaining, node, floor)
        if problem is None:
            go.add(node.instance_id)
            remaining = remaining.without([node.instance_id])
        else:
            refused[node.instance_id] = problem
    return ScaleInVerdict(
        allowed=tuple(i for i in ordered if i in go),
        refused=refused,
        margin_after=margin(remaining),
        unknown=tuple(unknown),
    )
