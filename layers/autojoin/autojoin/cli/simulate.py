"""``autojoin simulate SCENARIO.yaml [--json] [--seed N]``: a timeline on the local cloud.

Exit 0 when every expectation held and no invariant was broken by autojoin's own actions; 1 otherwise;
2 for a bad scenario (one ``error: …`` line on stderr); 3 if simulate itself failed (a bug: one line).
Format: docs/scenarios.md.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
LONG_SCENARIO_STEPS = 5
LONG_SCENARIO_LAUNCHES = 50


def _is_long(loaded: Any) -> bool:
    steps = loaded.steps
    big = any((t.step.desired or 0) >= LONG_SCENARIO_LAUNCHES for t in steps)
    return len(steps) >= LONG_SCENARIO_STEPS or big


def simulate_command(  # noqa: PLR0917 - one option each, as typer wants
    scenario: Annotated[
        str | None, typer.Argument(metavar="SCENARIO.yaml", help="A scenario (docs/scenarios.md).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline as one JSON document.")] = False,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the local cloud (default: the scenario's).")
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            metavar="PATH",
            help="The SAM template to wire from (default: $AUTOJOIN_TEMPLATE, else ./template.yaml, "
            "else the template shipped in the package).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Deploy with DryRun=true: the reconciler decides, changes nothing."),
    ] = False,
    chaos: Annotated[
        str | None,
        typer.Option(
            "--chaos",
            metavar="N",
            help="Run N generated timelines instead (seeded by --seed). One lost to a blow no quorum "
            "guard survives (an AZ lost as a scale-in passes through 4 voters) is listed as unsurvivable, "
            "not failed.",
        ),
    ] = None,
    save: Annotated[
        str | None, typer.Option("--save", metavar="DIR", help="--chaos: write each failing timeline here.")
    ] = None,
    jobs: Annotated[
        str | None,
        typer.Option(
            "--jobs", metavar="J", help="--chaos: run the timelines in J processes (default 1; same results)."
        ),
    ] = None,
    throttle: Annotated[str | None, typer.Option(help="Share of AWS call attempts throttled.")] = None,
    errors: Annotated[str | None, typer.Option(help="Share of AWS call attempts failing with a 5xx.")] = None,
    no_sdk_retries: Annotated[
        bool,
        typer.Option(
            "--no-sdk-retries", help="Faults hit whole calls (the SDK's retries do not absorb them)."
        ),
    ] = False,
    kill: Annotated[
        str | None, typer.Option(help="Share of function runs killed between two AWS calls.")
    ] = None,
    duplicate: Annotated[str | None, typer.Option(help="Share of events delivered 2 or 3 times.")] = None,
    late: Annotated[str | None, typer.Option(help="Share of events delivered late (out of order).")] = None,
    lose: Annotated[str | None, typer.Option(help="Share of events never delivered.")] = None,
    fault_seed: Annotated[str | None, typer.Option(help="Seed of the fault plan.")] = None,
) -> None:
    """Run a scenario on the local cloud: the layout and tolerance after each step, and a verdict.

    A scenario is an initial cluster and a timeline (scale, terminate, crash, AZ outage and recovery,
    instance refresh, token rotation, duplicate or late events) with expectations (see scenarios/).
    Exit 1 if an expectation failed or autojoin's own actions broke an invariant, 2 for a bad scenario.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from autojoin.scenario.warmup import prepare

    prepare()  # before moto is imported
    from autojoin.cli.chaos import chaos_command, fault_plan
    from autojoin.errors import AutojoinError
    from autojoin.localcloud import LocalCloudError, TemplateError
    from autojoin.scenario import render
    from autojoin.scenario.model import load_scenario
    from autojoin.scenario.runner import simulate

    flags = {
        "throttle": throttle,
        "errors": errors,
        "kill": kill,
        "duplicate": duplicate,
        "late": late,
        "lose": lose,
        "seed": fault_seed,
        "sdk_retries": False if no_sdk_retries else None,
    }
    fault_plan(None, flags)  # every flag checked before anything is read
    if chaos is not None:
        if scenario is not None:
            typer.echo("error: give a SCENARIO.yaml or --chaos N, not both", err=True)
            raise typer.Exit(EXIT_BAD_INPUT)
        chaos_command(
            chaos, seed or 0, flags=flags, template=template, save=save, as_json=as_json, jobs_text=jobs
        )
        return
    if jobs is not None:
        typer.echo("error: --jobs goes with --chaos N", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if scenario is None:
        typer.echo("error: give a SCENARIO.yaml (or --chaos N)", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        loaded = load_scenario(Path(scenario))
        if dry_run:
            dry = loaded.scenario.model_copy(update={"cluster": loaded.scenario.cluster.dry_run()})
            loaded = replace(loaded, scenario=dry)
    except AutojoinError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None

    err = Console(file=sys.stderr)  # bound now: the run captures what handlers print
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=err,
        transient=True,
        disable=not (err.is_terminal and _is_long(loaded)),
    )
    plan = fault_plan(loaded.scenario.faults, flags)
    task = bar.add_task(loaded.name, total=len(loaded.steps) or 1)

    def progress(done: int, total: int, what: str) -> None:
        bar.update(task, completed=done, total=total or 1, description=f"{loaded.name}: {what}")

    try:
        with bar:
            result = simulate(
                loaded,
                seed=seed,
                template=Path(template) if template is not None else None,
                progress=progress,
                faults=plan,
            )
    except (AutojoinError, LocalCloudError, TemplateError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except Exception as exc:  # a bug of simulate itself: neither a failed expectation (1) nor bad input
        typer.echo(f"error: simulate failed ({type(exc).__name__}: {str(exc)[:300]})", err=True)
        raise typer.Exit(EXIT_INTERNAL) from None

    if as_json:
        render.print_json(result.to_json())
    else:
        render.print_simulation(result)
    if not result.passed:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
