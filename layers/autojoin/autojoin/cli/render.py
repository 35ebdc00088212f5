"""Human output for the planning commands: tables, the AZ picture, one-line verdicts, JSON."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from autojoin.domain.placement import Recommendation
from autojoin.domain.quorum import Tolerance
from autojoin.domain.transition import TransitionPlan

MANAGER = "●"
UNHEALTHY = "○"


def console() -> Console:
    """A console on the current stdout (built per call so test runners can capture it)."""
    return Console(highlight=False)


def print_json(data: Mapping[str, object]) -> None:
    console().out(json.dumps(data, indent=2), highlight=False)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('s') else 's'}"


def _either(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def verdict_line(tol: Tolerance) -> str:
    """The seed's point at a glance: which AZ loss kills the cluster, or how many it survives."""
    if tol.managers == 0:
        return "no managers: there is no cluster to keep"
    fatal = tol.fatal_zones
    if fatal:
        line = f"loses quorum if {_either(fatal)} goes"
        if len(tol.layout) == 1:
            line += " (every manager is in one AZ)"
        return line
    k = tol.tolerates_zone_failures
    line = f"survives any {_plural(k, 'AZ loss')}"
    more = tol.zone_failure_survival.get(k + 1, 0.0)
    if more > 0:
        line += f", and {more:.0%} of the ways to lose {k + 1}"
    return line


def _verdict_text(tol: Tolerance) -> Text:
    style = "bold red" if tol.managers == 0 or tol.fatal_zones else "bold green"
    return Text(verdict_line(tol), style=style)


def zone_picture(
    tol: Tolerance, unhealthy: Mapping[str, int] | None = None, impaired: Collection[str] = ()
) -> RenderableType:
    """One box per AZ with a ● per manager (○ when unhealthy); a red box is an AZ whose loss alone
    loses quorum, a yellow one an impaired AZ."""
    fatal = set(tol.fatal_zones)
    down = unhealthy or {}
    boxes = []
    for az, count in tol.layout.items():
        sick = min(down.get(az, 0), count)
        marks = [MANAGER] * (count - sick) + [UNHEALTHY] * sick
        body = Text(" ".join(marks) if count else "(empty)", style="bold" if count else "dim")
        boxes.append(
            Panel(
                body,
                title=az,
                subtitle="fatal" if az in fatal else "impaired" if az in impaired else None,
                border_style="red" if az in fatal else "yellow" if az in impaired else "green",
                expand=False,
                padding=(0, 2),
            )
        )
    return Columns(boxes)


def _fractions(tol: Tolerance) -> str:
    if not tol.zone_failure_survival:
        return "-"
    return "  ".join(f"{k}: {v:.0%}" for k, v in tol.zone_failure_survival.items())


def tolerance_table(tol: Tolerance, title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("managers", str(tol.managers))
    table.add_row("layout", "-".join(str(c) for c in tol.layout.values()) + f" over {len(tol.layout)} AZs")
    table.add_row("quorum", str(tol.quorum))
    table.add_row("manager failures survived", str(tol.tolerates_node_failures))
    table.add_row("AZ losses survived (worst case)", str(tol.tolerates_zone_failures))
    table.add_row("share of k-AZ losses survived", _fractions(tol))
    return table


def show_tolerance(tol: Tolerance, title: str, impaired: Collection[str] = ()) -> None:
    console().print(
        Group(tolerance_table(tol, title), zone_picture(tol, impaired=impaired), _verdict_text(tol))
    )


def recommendation_json(rec: Recommendation) -> dict[str, object]:
    return {**rec.tolerance.to_json(), "zones": list(rec.zones)}


def show_recommendation(rec: Recommendation, target: str) -> None:
    headline = f"smallest cluster that {target}: {rec.managers} managers over {len(rec.zones)} AZs"
    console().print(Text(headline, style="bold"), soft_wrap=True)
    show_tolerance(rec.tolerance, "recommended layout")


def plan_json(plan: TransitionPlan) -> dict[str, object]:
    return {
        "start": plan.start.to_json(),
        "target": plan.target.to_json(),
        "steps": [
            {
                "action": s.action,
                "az": s.az,
                "layout": dict(s.layout_after),
                "managers": s.tolerance.managers,
                "healthy": s.healthy_after,
                "quorum": s.tolerance.quorum,
                "tolerates_zone_failures": s.tolerance.tolerates_zone_failures,
                "tolerance": s.tolerance.to_json(),
            }
            for s in plan.steps
        ],
    }


def _shape(layout: Mapping[str, int]) -> str:
    return ", ".join(f"{az}={c}" for az, c in layout.items())


def show_plan(plan: TransitionPlan, unhealthy: Mapping[str, int] | None = None) -> None:
    out = console()
    out.print(Text("from", style="bold"), zone_picture(plan.start, unhealthy), _verdict_text(plan.start))
    table = Table(title="safe steps (each state keeps quorum and AZ tolerance)", header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("layout after")
    table.add_column("healthy / quorum", justify="right")
    table.add_column("AZ losses survived", justify="right")
    for i, s in enumerate(plan.steps, start=1):
        healthy = "?" if s.healthy_after is None else str(s.healthy_after)
        table.add_row(
            str(i),
            f"{s.action} {s.az}",
            _shape(s.layout_after),
            f"{healthy} / {s.tolerance.quorum}",
            str(s.tolerance.tolerates_zone_failures),
        )
    if plan.steps:
        out.print(table)
    else:
        out.print(Text("nothing to do: the layout already matches the target", style="bold"))
    out.print(Text("to", style="bold"), zone_picture(plan.target), _verdict_text(plan.target))
