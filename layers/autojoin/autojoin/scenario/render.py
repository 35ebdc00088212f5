"""Human output for replay and simulate: rich tables on stdout, one-line verdicts; JSON documents."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autojoin.scenario.observe import ClusterState

MANAGER = "●"
DOWN = "○"
WORKER = "▪"


def console() -> Console:
    """A console on the current stdout (built per call so test runners can capture it)."""
    return Console(highlight=False, emoji=False, soft_wrap=False, width=140)


def print_json(data: Mapping[str, Any]) -> None:
    console().out(json.dumps(data, indent=2, default=str), highlight=False)


def layout_text(layout: Mapping[str, int]) -> str:
    return "-".join(str(v) for v in layout.values())


def tolerance_line(state: ClusterState) -> str:
    """What the managers survive now, in words (Down voters count until removed)."""
    if state.voters == 0:
        return "no managers"
    if not state.has_leader:
        return "NO LEADER: quorum lost, nothing can change"
    z = state.zone_failures_now
    n = state.node_failures_now
    line = f"survives {z} AZ loss{'es' if z != 1 else ''}, {n} manager loss{'es' if n != 1 else ''}"
    down = state.voters - state.managers
    if down:
        line += f" ({down} of {state.voters} voters down)"
    return line


def cluster_table(state: ClusterState, title: str = "cluster") -> Table:
    """One row per AZ: managers (● healthy, ○ not), workers, and whether the AZ is down."""
    table = Table(title=title, title_justify="left")
    table.add_column("AZ")
    table.add_column("managers")
    table.add_column("workers", justify="right")
    table.add_column("")
    zones = list(state.zones) + sorted({m.az or "?" for m in state.members} - set(state.zones))
    for az in zones:
        ms = [m for m in state.members if m.role == "manager" and (m.az or "?") == az]
        ws = [m for m in state.members if m.role == "worker" and (m.az or "?") == az and m.healthy]
        marks = Text()
        for m in ms:
            style = "bold yellow" if m.leader else ("green" if m.healthy else "red")
            marks.append(MANAGER if m.healthy else DOWN, style=style)
        table.add_row(az, marks, str(len(ws)), Text("AZ DOWN", style="red") if az in state.down_zones else "")
    return table


def summary_lines(state: ClusterState) -> list[Text]:
    tol = state.tolerance
    leader = (
        Text(f"leader {state.leader}", style="green")
        if state.has_leader
        else Text("no leader", style="bold red")
    )
    return [
        Text.assemble(
            f"managers {state.managers} healthy of {state.voters} voters, "
            f"layout {layout_text(state.layout)}; workers {state.workers}; ",
            leader,
        ),
        Text(
            f"tolerance (assess of the layout): quorum {tol.quorum}, survives {tol.tolerates_node_failures} "
            f"manager and {tol.tolerates_zone_failures} AZ loss(es); now: {tolerance_line(state)}"
        ),
    ]


def calls_table(calls: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=f"AWS calls ({len(calls)})", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("by")
    table.add_column("call")
    table.add_column("params (redacted)", overflow="fold")
    for i, call in enumerate(calls, start=1):
        params = json.dumps(call.get("params", {}), default=str, separators=(",", ":"))
        if len(params) > 160:
            params = params[:157] + "..."
        table.add_row(
            str(i), str(call.get("function") or ""), f"{call['service']}.{call['operation']}", params
        )
    return table


def lifecycle_table(records: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=f"lifecycle completions ({len(records)})", title_justify="left")
    for col in ("instance", "group", "hook", "result", "by"):
        table.add_column(col)
    for r in records:
        style = "green" if r["result"] == "CONTINUE" else "red"
        table.add_row(r["instance_id"], r["group"], r["hook"], Text(r["result"], style=style), r["by"])
    return table


def decision_text(decision: Any) -> Text:
    if isinstance(decision, str):
        return Text(decision, style="yellow" if decision.startswith("ignored") else "")
    return Text(json.dumps(decision, indent=2, default=str))


def print_replay(result: Any) -> None:
    """The human report of one replay (``result`` is a ReplayResult)."""
    out = console()
    out.print(Text(f"input: {result.input.describe()}", style="bold"))
    for line in result.setup:
        out.print(Text(f"  set up: {line}", style="dim"))
    out.print(Text("decision:", style="bold"))
    out.print(decision_text(result.decision))
    if result.invocations:
        ran = ", ".join(f"{i['function']} ({i['kind']}, {i['outcome']})" for i in result.invocations)
        out.print(f"ran: {ran}")
    out.print(calls_table(result.calls))
    out.print(lifecycle_table(result.lifecycle))
    out.print(cluster_table(result.cluster, title="resulting cluster"))
    for line in summary_lines(result.cluster):
        out.print(line)
