"""``autojoin replay EVENT.json [--state STATE.yaml] [--json]``: run one input on the local cloud.

Exit 0 with the decision (an "ignored: …" decision included); 1 if the run leaked a token; 2 for bad
input (one ``error: …`` line on stderr). Formats: docs/scenarios.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

EXIT_BAD_INPUT = 2
EXIT_VIOLATION = 1


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
    template: Annotated[
        str, typer.Option("--template", metavar="PATH", help="The SAM template to wire from.")
    ] = "template.yaml",
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
        result = replay(given, spec, seed=seed, template=Path(template))
    except (AutojoinError, LocalCloudError, TemplateError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None

    if as_json:
        render.print_json(result.to_json())
    else:
        render.print_replay(result)
    if result.violations:
        for v in result.violations:
            typer.echo(f"invariant broken: {v}", err=True)
        raise typer.Exit(EXIT_VIOLATION)


def register(app: typer.Typer) -> None:
    app.command("replay")(replay_command)
