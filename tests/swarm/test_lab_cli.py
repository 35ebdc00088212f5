"""`autojoin lab ...` against real daemons, in labs of their own (never the user's ajl lab)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from autojoin.cli.main import app
from autojoin.lab import Lab

pytestmark = pytest.mark.swarm

ROOT = "/tmp/autojoin-test-cli-lab"
PREFIX = "ajc"
WHERE = ["--root", ROOT, "--prefix", PREFIX]


@pytest.fixture
def cli_lab(lab: Lab) -> Iterator[None]:  # `lab`: the session lab proves this machine can run one
    yield
    Lab(ROOT, PREFIX).down()


def test_up_status_down(cli_lab: None) -> None:
    runner = CliRunner()
    up = runner.invoke(app, ["lab", "up", "--managers", "3", "--workers", "1", "--zones", "x,y", *WHERE])
    assert up.exit_code == 0, up.output
    assert "swarm of 3 manager(s) + 1 worker(s) up" in up.output
    status = runner.invoke(app, ["lab", "status", "--json", *WHERE])
    assert status.exit_code == 0, status.output
    data = json.loads(status.output)
    assert [n["az"] for n in data["nodes"]] == ["x", "y", "x", "x"]
    assert sorted(m["role"] for m in data["members"]) == ["manager", "manager", "manager", "worker"]
    assert {m["instance_id"] for m in data["members"]} == {n["instance_id"] for n in data["nodes"]}
    assert sum(m["manager"] == "leader" for m in data["members"]) == 1
    text = runner.invoke(app, ["lab", "status", *WHERE])
    assert text.exit_code == 0 and "leader" in text.output and "i-lab000000000004" in text.output
    down = runner.invoke(app, ["lab", "down", *WHERE])
    assert down.exit_code == 0 and "lab removed" in down.output
    assert "no lab nodes" in runner.invoke(app, ["lab", "status", *WHERE]).output


def test_bare_lab_has_no_swarm_to_report(cli_lab: None) -> None:
    runner = CliRunner()
    up = runner.invoke(app, ["lab", "up", "--managers", "1", "--workers", "0", "--bare", *WHERE])
    assert up.exit_code == 0 and "bare daemons" in up.output
    status = runner.invoke(app, ["lab", "status", *WHERE])
    assert "members: NotAManager" in status.output
    assert "inactive" in status.output


def test_bench_reports_without_asserting_times(cli_lab: None) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["lab", "bench", "--managers", "1", "--workers", "1", "--json", *WHERE])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(j["role"], j["path"]) for j in report["joins"]] == [
        ("worker", "autojoin"),
        ("worker", "bare"),
        ("manager", "handler"),  # the same cluster again, through the real on_launch handler
        ("worker", "handler"),
    ]
    assert report["lab_start_ms"] > 0 and report["summary"]["autojoin"]["n"] == 1
    assert report["summary"]["handler"]["n"] == 2
    assert report["quorum_loss_detect_s"] is None  # one manager: nothing to measure, and said so
    assert report["notes"]
    text = runner.invoke(app, ["lab", "bench", "--managers", "1", "--workers", "0", *WHERE])
    assert text.exit_code == 0, text.output
    assert "lab start" in text.output and "quorum loss" in text.output and "note:" in text.output
    assert "SWMTKN" not in result.output + text.output
