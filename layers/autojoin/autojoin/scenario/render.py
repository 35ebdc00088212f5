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
        by = f"{r['by']} ({r['caller']})" if r.get("caller") else r["by"]
        table.add_row(r["instance_id"], r["group"], r["hook"], Text(r["result"], style=style), by)
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


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _layout_cell(state: ClusterState) -> Text:
    text = Text()
    for i, (az, n) in enumerate(state.layout.items()):
        if i:
            text.append("-", style="dim")
        text.append(str(n), style="red" if az in state.down_zones else "")
    text.append(f" ({state.managers}/{state.voters})", style="dim")
    return text


def _expect_cell(step: Any) -> Text:
    if step.error:
        return Text("error", style="bold red")
    if not step.checks:
        return Text("")
    bad = [c for c in step.checks if not c.ok]
    if bad:
        return Text(f"✗ {len(bad)}/{len(step.checks)}", style="bold red")
    return Text(f"✓ {len(step.checks)}", style="green")


def timeline_table(result: Any) -> Table:
    """One row per step (``result`` is a SimulationResult): the manager layout and tolerance after it."""
    table = Table(title=f"{result.name} (seed {result.seed})", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("t", justify="right")
    table.add_column("step")
    table.add_column("managers per AZ (healthy/voters)")
    table.add_column("workers", justify="right")
    table.add_column("leader")
    table.add_column("tolerance now")
    table.add_column("expect")
    rows = [(None, "start", result.initial, None)] + [(s.index, s.describe, s.state, s) for s in result.steps]
    for index, what, state, step in rows:
        label = Text(what)
        if step is not None and step.note:
            label.append(f"\n{step.note}", style="dim")
        leader = Text("yes", style="green") if state.has_leader else Text("NO", style="bold red")
        table.add_row(
            "" if index is None else str(index),
            _clock(0 if step is None else step.at),
            label,
            _layout_cell(state),
            str(state.workers),
            leader,
            tolerance_line(state),
            Text("") if step is None else _expect_cell(step),
        )
    return table


def print_simulation(result: Any) -> None:
    out = console()
    out.print(timeline_table(result))
    out.print(cluster_table(result.final, title=f"final cluster (t={_clock(result.final.at)})"))
    for line in summary_lines(result.final):
        out.print(line)
    out.print(f"lifecycle completions: {dict(result.final.lifecycle)}")
    for index, check in result.failed_checks:
        where = f"step {index}" if index is not None else "end"
        out.print(Text(f"✗ expectation failed at {where}: {check}", style="red"))
    for index, error in result.errors:
        out.print(Text(f"✗ step {index} could not run: {error}", style="red"))
    for v in result.all_violations:
        out.print(Text(f"✗ invariant broken: {v}", style="bold red"))
    for index, why in result.unsurvivable:
        out.print(Text(f"! unsurvivable blow at step {index}: {why}", style="yellow"))
    if result.passed:
        n = sum(len(s.checks) for s in result.steps) + len(result.final_checks)
        out.print(Text(f"PASSED: {n} expectation(s) held, no invariant broken", style="bold green"))
    else:
        out.print(
            Text(
                f"FAILED: {len(result.failed_checks)} expectation(s) failed, "
                f"{len(result.errors)} step error(s), {len(result.all_violations)} invariant violation(s)",
                style="bold red",
            )
        )
