"""The ``autojoin`` command line: the typer app (entry point ``autojoin = autojoin.cli.main:app``).

Each command module has ``register(app: typer.Typer) -> None``; add yours in the marked spot below.
Keep imports at module level cheap: import heavy things (moto, docker) inside the command functions.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Annotated, Any, NoReturn

import typer

from autojoin import __version__
from autojoin.cli import lab, planning, replay, simulate, status

HELP = """\
autojoin keeps a self-managed Docker Swarm on EC2 Auto Scaling groups alive without a human: new \
instances join with the token for their role only, no scale-in costs the managers their quorum or \
more availability-zone (AZ) tolerance than it must, and managers stay spread so that losing an AZ \
does not lose the cluster (5 managers as 2-2-1 over three AZs, never 3-2 over two).

[bold]Planning[/bold] (pure maths, runs anywhere; add --json for machine-readable output):

* [bold]plan[/bold]: the best layout of N managers over your AZs

* [bold]assess[/bold]: what a layout such as a=2,b=2,c=1 survives

* [bold]recommend[/bold]: the smallest cluster surviving K AZ losses

* [bold]transition[/bold]: a safe step order from one layout to another

[bold]Operating[/bold] (read-only, AWS through the default credential chain):

* [bold]status[/bold] --stack NAME: managers per AZ, AZ tolerance now and at best, leader, pending joins,
retained instances, the reconciler's last decisions
"""

# commands that load the local cloud: freeing moto's and botocore's objects when the interpreter shuts down
# takes 1-2 s (a quarter of a replay), so their process ends right after its exit handlers (see _end); and
# they allocate millions of short-lived objects, so the cyclic collector's youngest generation runs every
# GC_THRESHOLD allocations instead of every 700 (15 % of a replay; scripts/bench_replay.py)
GC_THRESHOLD = 50_000
QUICK_EXIT_COMMANDS = frozenset({"replay", "simulate"})


class _App(typer.Typer):
    """The typer app; run as the ``autojoin`` script, replay and simulate end their process quickly."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(sys.argv) < 2 or sys.argv[1] not in QUICK_EXIT_COMMANDS or args or kwargs:
            return super().__call__(*args, **kwargs)
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(GC_THRESHOLD, older, oldest)
        try:
            super().__call__()
        except SystemExit as exc:  # click's standalone mode ends every run with one
            _end(exc.code)
        _end(0)


def _end(code: Any) -> NoReturn:
    """Exit with ``code`` as ``sys.exit`` would, minus the interpreter's teardown: the exit handlers run
    (logging's flush among them), the standard streams are flushed, then the process ends."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1
        sys.stderr.write(f"{code}\n")
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            status = status or 1
    os._exit(status)


app = _App(
    name="autojoin",
    no_args_is_help=True,
    help=HELP,
    rich_markup_mode="rich",
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"autojoin {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """autojoin: the serverless control plane for Docker Swarm clusters on EC2 Auto Scaling groups."""


# --- command modules: one register(app) call each -------------------------------------------------
planning.register(app)
lab.register(app)
replay.register(app)
simulate.register(app)
status.register(app)
# (replay, simulate and lab register here, e.g. `replay.register(app)`)
# ---------------------------------------------------------------------------------------------------
