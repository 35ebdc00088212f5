"""``autojoin status --stack NAME``: the cluster at a glance, read-only.

Finds the stack's manager group and state table by the template's naming (see :func:`locate`) using the
default credential chain — the same calls against AWS and the embedded local cloud, which provisions
without CloudFormation. Only Describe/List/Get/Query calls are made (IAM: autoscaling:Describe*,
ec2:DescribeInstances, dynamodb:ListTables, dynamodb:GetItem and dynamodb:Query on the state table).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from autojoin.cli import render
from autojoin.errors import BadInput, NotFound

if TYPE_CHECKING:
    import boto3

    from autojoin.services.status import StatusReport

EXIT_BAD_INPUT = 2


def locate(session: boto3.Session, stack: str) -> tuple[str, str]:
    """(cluster name, state table name) of ``stack``, by the template's naming contract (docs/wiring.md):
    the manager group is ``STACK-manager`` (its tag autojoin:cluster names the cluster) and CloudFormation
    names the state table ``STACK-StateTable-<suffix>``. The same calls work on AWS and the local cloud."""
    asg = session.client("autoscaling")
    groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[f"{stack}-manager"])["AutoScalingGroups"]
    if not groups:
        raise NotFound(f"stack {stack} not found (no Auto Scaling group {stack}-manager)")
    tags = {t["Key"]: t["Value"] for t in groups[0].get("Tags", [])}
    cluster = tags.get("autojoin:cluster")
    if not cluster:
        raise NotFound(f"group {stack}-manager has no autojoin:cluster tag (is it an autojoin stack?)")
    tables = [
        name
        for page in session.client("dynamodb").get_paginator("list_tables").paginate()
        for name in page.get("TableNames", [])
        if name.startswith(f"{stack}-StateTable-")
    ]
    if len(tables) != 1:
        raise NotFound(
            f"cannot tell the state table of stack {stack} ({len(tables)} tables named {stack}-StateTable-*)"
        )
    return cluster, tables[0]


def gather(session: boto3.Session, stack: str, now: datetime) -> StatusReport:
    from autojoin.adapters.aws.fleet import AsgFleet
    from autojoin.adapters.aws.state import DynamoStateStore
    from autojoin.services.status import cluster_status

    cluster, table = locate(session, stack)
    fleet = AsgFleet(session.client("autoscaling"), session.client("ec2"))
    state = DynamoStateStore(session.client("dynamodb"), table, lambda: now)
    return cluster_status(cluster, fleet=fleet, state=state, now=now)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never written"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def show(report: StatusReport) -> None:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    out = render.console()
    picture = render.zone_picture(report.layout, unhealthy=report.unhealthy, impaired=report.impaired)
    facts = Table(title=f"cluster {report.cluster}", show_header=False)
    facts.add_column("what")
    facts.add_column("value")
    facts.add_row("managers", f"{report.healthy} healthy of {report.voters} voters (target {report.target})")
    facts.add_row("quorum margin", str(report.margin))
    facts.add_row("AZ losses survived", f"now {report.tolerance_now}, at best {report.tolerance_best}")
    facts.add_row("leader", f"{report.leader} in {report.leader_az}" if report.leader else "none known")
    facts.add_row("impaired AZs", ", ".join(report.impaired) or "none")
    facts.add_row("pending joins", ", ".join(report.pending) or "none")
    facts.add_row("retained instances", ", ".join(report.retained) or "none")
    facts.add_row("snapshot", _age(report.snapshot_age))
    decisions = Table(title="last decisions", show_header=True, header_style="bold")
    decisions.add_column("at")
    decisions.add_column("what")
    decisions.add_column("detail")
    for d in report.decisions:
        decisions.add_row(
            d.at.strftime("%Y-%m-%d %H:%M:%S"), d.kind + (" (dry-run)" if d.dry_run else ""), d.detail
        )
    ok = report.margin > 0 and report.tolerance_now >= report.tolerance_best
    verdict = Text(
        render.verdict_line(report.layout) + ("" if ok else " — see the decisions below"),
        style="bold green" if ok else "bold red",
    )
    out.print(Group(facts, picture, verdict, decisions))


def status_command(
    stack: Annotated[
        str | None, typer.Option("--stack", metavar="NAME", help="The stack (required).")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region (default: the chain's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """The cluster of a deployed stack, read-only: managers per AZ drawn like `plan`, AZ tolerance now and
    at best, the leader, pending joins, retained instances and the reconciler's last decisions."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    from autojoin.errors import AutojoinError

    try:
        if not stack:
            raise BadInput("--stack is required, e.g. --stack demo")
        session = boto3.Session(region_name=region) if region else boto3.Session()
        report = gather(session, stack, datetime.now(UTC))
    except NoCredentialsError:
        typer.echo("error: no AWS credentials (the default chain found none)", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except NoRegionError:
        typer.echo("error: no AWS region: pass --region or set AWS_REGION", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (AutojoinError, ClientError, BotoCoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        doc: dict[str, Any] = report.to_json()
        render.print_json(doc)
    else:
        show(report)


def register(app: typer.Typer) -> None:
    app.command("status")(status_command)
