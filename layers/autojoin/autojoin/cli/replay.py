"""``autojoin replay EVENT.json [--state STATE.yaml] [--json]``: run one input on the local cloud.

Exit 0 with the decision (an "ignored: …" decision included); 1 if the run leaked a token (that only);
2 for bad input (one ``error: …`` line on stderr); 3 if replay itself failed (a bug: one ``error: …``
line, no traceback). Formats: docs/scenarios.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_BAD_INPUT = 2
EXIT_VIOLATION = 1
EXIT_INTERNAL = 3
TEMPLATE_HELP = (
    "The SAM template to wire from (default: $AUTOJOIN_TEMPLATE, else ./template.yaml, "
    "else the template shipped in the package)."
)


def replay_command(  # noqa: PLR0917 - one typer option each
    event: Annotated[str, typer.Argument(metavar="EVENT.json", help="An input as AWS would deliver it.")],
    state: Annotated[
        str | None,
        typer.Option(
            "--state", metavar="STATE.yaml", help="The cluster to replay against (docs/scenarios.md)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of tables.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the local cloud's random choices.")] = 0,
    template: Annotated[str | None, typer.Option("--template", metavar="PATH", help=TEMPLATE_HELP)] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Deploy with DryRun=true: the reconciler decides, changes nothing."),
    ] = False,
) -> None:
    """Replay one input on the local cloud: the decision, the AWS calls it made, the resulting cluster.

    EVENT.json is a lifecycle action, a launch/terminate result, the scheduled reconcile event, a
    termination policy input, a Secrets Manager rotation step or a hook's TEST_NOTIFICATION (see events/).
    Secrets are redacted; an input autojoin does not handle is an "ignored: ..." decision (exit 0).
    """
    from autojoin.scenario.warmup import prepare

    prepare()  # before moto is imported
    from autojoin.errors import AutojoinError
    from autojoin.localcloud import LocalCloudError, TemplateError
    from autojoin.scenario import render
    from autojoin.scenario.inputs import read_event
    from autojoin.scenario.replay import replay
    from autojoin.scenario.spec import load_state

    try:
        given = read_event(Path(event))
        spec = load_state(Path(state) if state is not None else None)
        if dry_run:
            spec = spec.dry_run()
        result = replay(given, spec, seed=seed, template=Path(template) if template is not None else None)
    except (AutojoinError, LocalCloudError, TemplateError) as exc:
        typer.echo(f"error: {printable(str(exc))}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except Exception as exc:  # a bug of replay itself: not bad input, and not a token leak (exit 1)
        typer.echo(f"error: replay failed ({type(exc).__name__}: {printable(str(exc))[:300]})", err=True)
        raise typer.Exit(EXIT_INTERNAL) from None

    if as_json:
        render.print_json(result.to_json())  # JSON escapes what UTF-8 cannot carry (lone surrogates)
    else:
        render.print_replay(printable_result(result))
    if result.violations:
        for v in result.violations:
            typer.echo(f"invariant broken: {v}", err=True)
        raise typer.Exit(EXIT_VIOLATION)


def printable(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8: a lone surrogate (JSON allows ``\\udc80``)
    becomes its escape ``\\udc80`` instead of crashing the terminal writer."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    return value


def printable_result(result: Any) -> Any:
    """A ReplayResult whose strings all print (see :func:`printable`)."""
    from dataclasses import replace

    from autojoin.scenario.inputs import Input

    return replace(
        result,
        input=Input(result.input.shape, printable(result.input.event)),
        decision=printable(result.decision),
        calls=printable(result.calls),
        lifecycle=printable(result.lifecycle),
        setup=printable(result.setup),
    )


def register(app: typer.Typer) -> None:
    app.command("replay")(replay_command)
