"""Planning commands: plan, assess, recommend, transition. Pure maths, no cloud, no cluster needed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from autojoin.cli import render
from autojoin.cli.parsing import parse_count, parse_layout, parse_zones
from autojoin.domain.placement import optimal_layout, recommend
from autojoin.domain.quorum import assess
from autojoin.domain.transition import plan_transition
from autojoin.errors import AutojoinError, BadInput

EXIT_BAD_INPUT = 2

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@contextmanager
def clean_errors() -> Iterator[None]:
    """Turn autojoin's own errors into one ``error: ...`` line on stderr and exit code 2."""
    try:
        yield
    except AutojoinError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def required(value: str | None, option: str, example: str) -> str:
    """Options are declared optional so that a missing one gets the same one-line error as a bad one."""
    if value is None:
        raise BadInput(f"{option} is required, e.g. {option} {example}")
    return value


def plan(
    managers: Annotated[
        str | None, typer.Option("--managers", "-n", metavar="N", help="How many managers (required).")
    ] = None,
    zones: Annotated[
        str | None, typer.Option("--zones", "-z", metavar="A,B,C", help="The AZs to use (required).")
    ] = None,
    capacity: Annotated[
        str | None,
        typer.Option(metavar="A=MAX,...", help="Most managers an AZ can hold, e.g. a=3,b=2."),
    ] = None,
    impaired: Annotated[
        str | None, typer.Option(metavar="A,B", help="AZs to keep empty (impaired or draining).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The best layout of N managers over the given AZs, and what it survives."""
    with clean_errors():
        n = parse_count(required(managers, "--managers", "5"), "--managers", minimum=1)
        zone_list = parse_zones(required(zones, "--zones", "a,b,c"))
        caps = parse_layout(capacity, "--capacity", need_managers=False) if capacity is not None else None
        down = parse_zones(impaired, "--impaired") if impaired is not None else []
        for az in [*(caps or {}), *down]:
            if az not in zone_list:
                raise BadInput(f"AZ {az} is not in --zones ({','.join(zone_list)})")
        tol = assess(optimal_layout(n, zone_list, capacity=caps, impaired=down))
    if as_json:
        render.print_json(tol.to_json())
    else:
        render.show_tolerance(tol, f"best layout of {n} managers over {len(zone_list)} AZs", impaired=down)


def assess_command(
    layout: Annotated[
        str | None,
        typer.Option(
            "--layout", "-l", metavar="A=N,...", help="Managers per AZ, e.g. a=2,b=2,c=1 (required)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """What a given layout of managers survives: node failures, AZ losses, the share of k-AZ losses."""
    with clean_errors():
        tol = assess(parse_layout(required(layout, "--layout", "a=2,b=2,c=1")))
    if as_json:
        render.print_json(tol.to_json())
    else:
        render.show_tolerance(tol, f"{tol.managers} managers over {len(tol.layout)} AZs")


def recommend_command(
    survive_zones: Annotated[
        str | None,
        typer.Option("--survive-zones", "-k", metavar="K", help="Survive the loss of any K AZs (required)."),
    ] = None,
    zones: Annotated[
        str | None, typer.Option("--zones", "-z", metavar="A,B,C", help="The AZs available (required).")
    ] = None,
    survive_nodes: Annotated[
        str | None,
        typer.Option("--survive-nodes", "-f", metavar="F", help="Also survive any F manager failures."),
    ] = None,
    allow_even: Annotated[bool, typer.Option("--allow-even", help="Allow an even manager count.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The smallest cluster (managers, then AZs) that survives K AZ losses and F manager failures."""
    with clean_errors():
        k = parse_count(required(survive_zones, "--survive-zones", "1"), "--survive-zones")
        f = parse_count(survive_nodes, "--survive-nodes") if survive_nodes is not None else None
        rec = recommend(
            parse_zones(required(zones, "--zones", "a,b,c")),
            survive_zones=k,
            survive_nodes=f,
            allow_even=allow_even,
        )
    if as_json:
        render.print_json(render.recommendation_json(rec))
    else:
        target = f"survives any {k} AZ loss{'' if k == 1 else 'es'}"
        if f is not None:
            target += f" and {f} manager failure{'' if f == 1 else 's'}"
        render.show_recommendation(rec, target)


def transition(
    current: Annotated[
        str | None, typer.Option("--from", metavar="A=N,...", help="The layout now, e.g. a=3,b=2 (required).")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--to", metavar="A=N,...", help="The layout wanted, e.g. a=2,b=2,c=1 (required)."),
    ] = None,
    unhealthy: Annotated[
        str | None,
        typer.Option(metavar="A=N,...", help="Managers (counted in --from) that are down, per AZ."),
    ] = None,
    spare_workers: Annotated[
        str | None,
        typer.Option(metavar="A=N,...", help="Workers that may be promoted instead of adding, per AZ."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """A safe order of single-manager steps from one layout to another (add before remove)."""
    with clean_errors():
        start = parse_layout(required(current, "--from", "a=3,b=2"), "--from", need_managers=False)
        goal = parse_layout(required(target, "--to", "a=2,b=2,c=1"), "--to")
        down = parse_layout(unhealthy, "--unhealthy", need_managers=False) if unhealthy is not None else None
        spares = (
            parse_layout(spare_workers, "--spare-workers", need_managers=False)
            if spare_workers is not None
            else None
        )
        result = plan_transition(start, goal, unhealthy=down, spare_workers=spares)
    if as_json:
        render.print_json(render.plan_json(result))
    else:
        render.show_plan(result, down)


COMMANDS: dict[str, Callable[..., None]] = {
    "plan": plan,
    "assess": assess_command,
    "recommend": recommend_command,
    "transition": transition,
}


def register(app: typer.Typer) -> None:
    """Add the planning commands to ``app``."""
    for name, fn in COMMANDS.items():
        app.command(name, rich_help_panel="Planning (pure maths, nothing to deploy)")(fn)
