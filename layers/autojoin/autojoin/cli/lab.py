"""``autojoin lab``: a real Docker Swarm on this machine (root, Debian's docker.io), to watch and measure.

up / down / status drive the user's lab (default /tmp/autojoin-lab, namespaces ajl-*); bench runs in a
lab of its own and reports lab start time, join latency per node (autojoin agent path beside a bare
``docker swarm join``) and the time a surviving manager takes to report quorum loss.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from autojoin.errors import AutojoinError

if TYPE_CHECKING:
    from autojoin.lab import Lab

EXIT_LAB = 2

lab_app = typer.Typer(
    name="lab",
    no_args_is_help=True,
    help="A real Docker Swarm lab on this machine: one dockerd per node, each in its own network namespace.",
)

RootOpt = Annotated[str, typer.Option("--root", help="Lab state folder.")]
PrefixOpt = Annotated[str, typer.Option("--prefix", help="Network namespace prefix.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@contextmanager
def lab_errors() -> Iterator[None]:
    from autojoin.lab import LabError

    try:
        yield
    except (LabError, AutojoinError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_LAB) from None


def _lab(root: str, prefix: str, **options: Any) -> Lab:
    """The lab at ROOT (imported here: the lab's modules are not needed by the other commands)."""
    from autojoin.lab import Lab

    return Lab(root, prefix, **options)


def _zones(text: str) -> tuple[str, ...]:
    zones = tuple(z.strip() for z in text.split(",") if z.strip())
    if not zones:
        raise typer.BadParameter("give at least one zone, e.g. a,b,c")
    return zones


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _members(root: str, prefix: str) -> list[dict[str, Any]]:
    """The swarm's member list, read through SwarmOrchestrator from any lab node that answers."""
    from autojoin.adapters.local.runner import LocalSocketRunner
    from autojoin.adapters.swarm.orchestrator import SwarmOrchestrator
    from autojoin.errors import OrchestratorError

    lab = _lab(root, prefix)
    orch = SwarmOrchestrator(LocalSocketRunner(lab.local_node), lambda: [n.instance_id for n in lab.nodes()])
    try:
        members = orch.members()
    except OrchestratorError as exc:
        return [{"error": f"{type(exc).__name__}: {exc}"}]
    return [
        {
            "hostname": m.hostname,
            "instance_id": m.instance_id or "",
            "az": m.labels.get("az", ""),
            "role": m.role.value,
            "status": "ready" if m.ready else "down",
            "manager": ("leader" if m.leader else "reachable" if m.reachable else "unreachable")
            if m.role.value == "manager"
            else "",
            "address": m.address or "",
            "node_id": m.node_id,
        }
        for m in members
    ]


@lab_app.command("up")
def up(
    *,
    managers: Annotated[int, typer.Option("--managers", "-m", min=1, help="Managers.")] = 3,
    workers: Annotated[int, typer.Option("--workers", "-w", min=0, help="Workers.")] = 2,
    zones: Annotated[str, typer.Option("--zones", "-z", help="AZ names, round-robin per role.")] = "a,b,c",
    bare: Annotated[bool, typer.Option("--bare", help="Start daemons only; form no swarm.")] = False,
    root: RootOpt = "/tmp/autojoin-lab",  # noqa: S108
    prefix: PrefixOpt = "ajl",
) -> None:
    """Start a fresh lab: MANAGERS + WORKERS nodes over ZONES, formed into a labelled swarm."""
    with lab_errors():
        lab = _lab(root, prefix)
        t0 = time.perf_counter()
        nodes = lab.up(managers, workers, _zones(zones), form=not bare)
        took = time.perf_counter() - t0
        rows = [
            {"node": f"n{n.number}", "instance_id": n.instance_id, "az": n.az, "role": n.role or "-",
             "address": n.address, "socket": n.socket}
            for n in nodes
        ]  # fmt: skip
        typer.echo(_table(rows, ["node", "instance_id", "az", "role", "address", "socket"]))
        what = "bare daemons" if bare else "swarm"
        typer.echo(f"{what} of {managers} manager(s) + {workers} worker(s) up in {took:.1f} s")
        typer.echo(f"docker CLI: docker -H {nodes[0].socket} node ls")


@lab_app.command("down")
def down(root: RootOpt = "/tmp/autojoin-lab", prefix: PrefixOpt = "ajl") -> None:  # noqa: S108
    """Stop every daemon of the lab, delete its namespaces and state."""

    with lab_errors():
        _lab(root, prefix).down()
        typer.echo("lab removed")


@lab_app.command("status")
def status(
    root: RootOpt = "/tmp/autojoin-lab",  # noqa: S108
    prefix: PrefixOpt = "ajl",
    as_json: JsonOpt = False,
) -> None:
    """Each node's daemon and swarm state, and the member list as a manager reports it."""

    with lab_errors():
        nodes = _lab(root, prefix).status()
        members = _members(root, prefix) if nodes else []
        if as_json:
            typer.echo(json.dumps({"nodes": nodes, "members": members}, indent=1))
            return
        if not nodes:
            typer.echo(f"no lab nodes under {root}")
            return
        typer.echo(
            _table(nodes, ["node", "instance_id", "az", "address", "daemon", "cut", "swarm", "manager"])
        )
        typer.echo("")
        if members and "error" in members[0]:
            typer.echo(f"members: {members[0]['error']}")
        else:
            typer.echo(
                _table(members, ["hostname", "instance_id", "az", "role", "status", "manager", "address"])
            )


@lab_app.command("bench")
def bench(
    *,
    managers: Annotated[int, typer.Option("--managers", "-m", min=1)] = 3,
    workers: Annotated[int, typer.Option("--workers", "-w", min=0)] = 2,
    zones: Annotated[str, typer.Option("--zones", "-z")] = "a,b,c",
    how: Annotated[str, typer.Option("--how", help="Lose the managers by: kill | cut.")] = "kill",
    keep: Annotated[bool, typer.Option("--keep", help="Leave the bench lab running.")] = False,
    root: RootOpt = "/tmp/autojoin-bench-lab",  # noqa: S108
    prefix: PrefixOpt = "ajb",
    as_json: JsonOpt = False,
    template: Annotated[
        Path, typer.Option("--template", help="The SAM template whose on_launch handler is timed.")
    ] = Path("template.yaml"),
    guard: Annotated[
        bool, typer.Option("--guard", help="Also time a guarded 5 -> 3 managers (five more daemons).")
    ] = False,
) -> None:
    """Measure lab start, join latency per node (through the on_launch handler, through the agent, and a
    bare `docker swarm join`), quorum-loss detection, and with --guard a guarded 5 -> 3. Numbers are
    reported, never asserted."""
    from autojoin.lab.bench import run_bench  # boto3 + moto: only for the bench

    with lab_errors():
        report = run_bench(
            managers,
            workers,
            _zones(zones),
            how=how,
            keep=keep,
            lab=_lab(root, prefix, stop_wait=5),
            progress=lambda m: typer.echo(m, err=True),
            template=template,
            guard=guard,
        )
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=1))
            return
        daemons = sum(j.path != "handler" for j in report.joins) + 1
        typer.echo(f"lab start ({daemons} bare daemons): {report.lab_start_ms:.0f} ms")
        typer.echo(f"init (agent, tokens stored): {report.init_ms:.0f} ms")
        typer.echo(_table([vars(j) for j in report.joins], ["node", "role", "az", "path", "ms"]))
        for path, s in report.summary().items():
            typer.echo(f"{path}: n={s['n']} median {s['median_ms']:.0f} ms, max {s['max_ms']:.0f} ms")
        lost = f"{report.quorum_loss_how} {report.managers_lost}/{report.managers_total} managers"
        typer.echo(
            f"quorum loss ({lost}): reported after {report.quorum_loss_detect_s} s; "
            f"leader back {report.leader_back_s} s after they returned"
        )
        if report.guard_5_to_3_s is not None:
            typer.echo(
                f"guarded 5 -> 3 managers: {report.guard_5_to_3_s} s, {report.guard_5_to_3_minutes} guard "
                f"passes, layout {report.guard_5_to_3_layout}"
            )
        for note in report.notes:
            typer.echo(f"note: {note}")


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")
