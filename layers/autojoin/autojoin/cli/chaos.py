"""``autojoin simulate --chaos N --seed S [fault flags] [--save DIR]``: N generated timelines, each checked
against every invariant (scenario/chaos.py); the fault flags shared with a single ``simulate`` run.

Prints one line per failing timeline (and the scenario file that reproduces it, with ``--save``), then a
summary. A timeline whose problems all come at or after a blow that no quorum guard survives (an AZ lost while
a scale-in passes through 4 voters: scenario/blows.py) is listed as *unsurvivable*, with why, and does not
fail the run. Exit 0 when no timeline failed, 1 otherwise, 2 for bad flags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


_OPTION = {"seed": "--fault-seed", "sdk_retries": "--no-sdk-retries"}


def _bad(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _share(text: str, option: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise _bad(f"{option} must be a share between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise _bad(f"{option} must be a share between 0 and 1, got {text!r}")
    return value


def _whole(text: str, option: str, minimum: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise _bad(f"{option} must be a whole number, got {text!r}") from None
    if value < minimum:
        raise _bad(f"{option} must be at least {minimum}, got {value}")
    return value


def fault_plan(scenario_plan: Any, flags: dict[str, Any]) -> Any:
    """The scenario's ``faults:`` with the flags given on the command line (strings, as typed) over it
    (None: no faults). A bad value: one ``error:`` line, exit 2."""
    from autojoin.localcloud.faults import merge

    given: dict[str, Any] = {}
    for key, raw in flags.items():
        if raw is None:
            continue
        option = _OPTION.get(key, "--" + key.replace("_", "-"))
        if isinstance(raw, bool):
            given[key] = raw
        elif key == "seed":
            given[key] = _whole(str(raw), option, 0)
        else:
            given[key] = _share(str(raw), option)
    return merge(scenario_plan, given)


def chaos_command(
    count_text: str,
    seed: int,
    *,
    flags: dict[str, Any],
    template: str | None,
    save: str | None,
    as_json: bool,
    jobs_text: str | None = None,
) -> None:
    from autojoin.localcloud import LocalCloudError, TemplateError
    from autojoin.localcloud.faults import describe
    from autojoin.scenario import chaos

    count = _whole(count_text, "--chaos", 1)
    jobs = _whole(jobs_text, "--jobs", 1) if jobs_text is not None else 1
    plan = fault_plan(None, flags)
    from autojoin.errors import BadInput
    from autojoin.scenario.world import find_template

    try:
        template_path = find_template(Path(template) if template is not None else None)
    except BadInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None

    done: list[int] = []

    def show(o: chaos.Outcome) -> None:
        done.append(o.index)
        faults = ", ".join(f"{k} {v}" for k, v in sorted(o.faults.items())) or "none"
        verdict = "ok" if o.passed else "FAILED" if o.failed else "unsurvivable"
        where = f"timeline {o.index + 1}/{count}"
        if jobs > 1:  # finished out of order: say how far the run is, too
            where = f"[{len(done)}/{count}] timeline {o.index + 1}"
        typer.echo(f"{where}: {verdict} (faults: {faults})", err=True)
        if as_json or o.passed:
            return
        where = f" -> {o.saved}" if o.saved else ""
        typer.echo(f"timeline {o.index} ({o.document['name']}) {verdict.upper()}{where}")
        for why in o.unsurvivable:
            typer.echo(f"    unsurvivable blow, {why}")
        for p in o.problems:
            typer.echo(f"    {p}")

    try:
        outcomes = chaos.run_parallel(
            count,
            seed,
            plan,
            jobs=jobs,
            template=template_path,
            save_dir=Path(save) if save else None,
            on_outcome=show,
        )
    except (LocalCloudError, TemplateError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    failed = [o for o in outcomes if o.failed]
    unsurvivable = [o for o in outcomes if o.unsurvivable]
    injected: dict[str, int] = {}
    for o in outcomes:
        for k, v in o.faults.items():
            injected[k] = injected.get(k, 0) + v
    skipped = sum(len(o.skipped) for o in outcomes)
    if as_json:
        doc = {
            "timelines": count,
            "seed": seed,
            "faults": plan.model_dump(mode="json") if plan is not None else None,
            "failed": [
                {
                    "index": o.index,
                    "name": o.document["name"],
                    "problems": o.problems,
                    "saved": str(o.saved or ""),
                }
                for o in failed
            ],
            "unsurvivable": [
                {
                    "index": o.index,
                    "name": o.document["name"],
                    "why": o.unsurvivable,
                    "problems": o.problems,
                    "saved": str(o.saved or ""),
                }
                for o in unsurvivable
            ],
            "injected": injected,
            "skipped_steps": skipped,
        }
        typer.echo(json.dumps(doc, indent=2))
    else:
        what = describe(plan) if plan is not None else "no faults"
        listed = " (a blow no guard survives, listed above)" if unsurvivable else ""
        typer.echo(
            f"chaos: {count} timeline(s), seed {seed}, {what}: "
            f"{count - len(failed) - len(unsurvivable)} passed, {len(failed)} failed, "
            f"{len(unsurvivable)} unsurvivable{listed}; "
            f"injected {injected or 'nothing'}; "
            f"{skipped} step(s) skipped (no target, or refused by an injected AWS error)"
        )
    if failed:
        raise typer.Exit(EXIT_FAILED)
