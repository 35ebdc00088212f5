"""The ``autojoin`` command line: the typer app (entry point ``autojoin = autojoin.cli.main:app``).

Each command module has ``register(app: typer.Typer) -> None``; add yours in the marked spot below.
Keep imports at module level cheap: import heavy things (moto, docker) inside the command functions.
"""

from __future__ import annotations

from typing import Annotated

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

app = typer.Typer(
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
