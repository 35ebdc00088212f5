"""``autojoin status`` against the local cloud: the same boto3 calls as against AWS (default chain)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from autojoin.cli.main import app
from autojoin.domain.model import Role
from autojoin.scenario.spec import ClusterSpec, GroupSpec
from autojoin.scenario.world import World

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
A, B, C = "us-east-1a", "us-east-1b", "us-east-1c"


def everything(world: World) -> tuple[Any, ...]:
    """The state table's items and the groups' instances, desired capacities and protection."""
    db = world.cloud.session.client("dynamodb", region_name="us-east-1")
    items = [db.scan(TableName=t)["Items"] for t in db.list_tables()["TableNames"]]
    asg = world.cloud.session.client("autoscaling", region_name="us-east-1")
    groups = asg.describe_auto_scaling_groups()["AutoScalingGroups"]
    return (items, [(g["DesiredCapacity"], g["MaxSize"], g["Instances"]) for g in groups])


def test_status_reads_the_stack_and_changes_nothing() -> None:
    spec = ClusterSpec(
        managers=GroupSpec(layout={A: 3, B: 2}, zones=(A, B)),
        workers=GroupSpec(count=1, zones=(A, B)),
        parameters={"DryRun": "true"},
    )
    with World(spec, template=REPO / "template.yaml") as world:
        world.set_group_zones(Role.MANAGER, (A, B, C))
        world.advance_to(301)  # one reconciler tick (dry-run: it only decides)
        before = everything(world)
        result = runner.invoke(app, ["status", "--stack", "demo", "--region", "us-east-1", "--json"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        table = runner.invoke(
            app, ["status", "--stack", "demo", "--region", "us-east-1"], env={"COLUMNS": "220"}
        )
        assert table.exit_code == 0, table.output
        assert everything(world) == before, "status is read-only"
    assert doc["cluster"] == "demo"
    assert doc["voters"] == 5 and doc["healthy_managers"] == 5 and doc["target_managers"] == 5
    assert doc["layout"]["layout"] == {A: 3, B: 2, C: 0}
    assert doc["tolerance"] == {"now": 0, "best": 1}
    assert doc["leader_az"] == A and doc["quorum_margin"] == 2
    assert doc["pending_joins"] == [] and doc["retained"] == []
    assert any("would launch a manager into us-east-1c" in d["detail"] for d in doc["decisions"])
    assert "would launch a manager into us-east-1c" in table.stdout
    assert "now 0, at best 1" in table.stdout


def test_status_of_a_stack_that_does_not_exist_is_one_error_line() -> None:
    spec = ClusterSpec()
    with World(spec, template=REPO / "template.yaml"):
        result = runner.invoke(app, ["status", "--stack", "nosuch", "--region", "us-east-1"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: stack nosuch not found") and result.stderr.count("\n") == 1


def test_status_needs_a_stack() -> None:
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --stack is required")
