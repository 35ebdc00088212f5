"""The planning commands, end to end through typer's CliRunner."""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from autojoin.cli.main import app

runner = CliRunner()

KEYS = {
    "managers",
    "layout",
    "quorum",
    "tolerates_node_failures",
    "tolerates_zone_failures",
    "zone_failure_survival",
}


def run(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def run_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return json.loads(result.stdout)


# --- assess: the seed's worked examples -----------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "zones_survived", "fractions"),
    [
        ("a=3,b=2", 0, {"1": 0.5}),
        ("a=2,b=2,c=1", 1, {"1": 1.0, "2": 0.0}),
        ("a=2,b=1,c=1,d=1", 1, {"1": 1.0, "2": 0.5, "3": 0.0}),
        ("a=1,b=1,c=1,d=1,e=1", 2, {"1": 1.0, "2": 1.0, "3": 0.0, "4": 0.0}),
    ],
)
def test_assess_json_reproduces_the_worked_examples(
    layout: str, zones_survived: int, fractions: dict[str, float]
) -> None:
    data = run_json("assess", "--layout", layout)
    assert set(data) == KEYS
    assert data["managers"] == 5
    assert data["quorum"] == 3
    assert data["tolerates_node_failures"] == 2
    assert data["tolerates_zone_failures"] == zones_survived
    assert data["zone_failure_survival"] == fractions
    assert data["layout"] == {az: int(c) for az, c in (part.split("=") for part in layout.split(","))}


def test_assess_human_output_shows_the_fatal_az() -> None:
    result = run("assess", "--layout", "us-east-1a=3,us-east-1b=2")
    assert result.exit_code == 0
    assert "loses quorum if us-east-1a goes" in result.stdout
    assert "●" in result.stdout
    assert "fatal" in result.stdout
    assert "quorum" in result.stdout


def test_assess_human_output_for_a_spread_layout() -> None:
    result = run("assess", "-l", "a=2,b=1,c=1,d=1")
    assert result.exit_code == 0
    assert "survives any 1 AZ loss, and 50% of the ways to lose 2" in result.stdout
    assert "fatal" not in result.stdout


def test_assess_single_az_and_empty_az() -> None:
    one = run("assess", "--layout", "a=3")
    assert "loses quorum if a goes (every manager is in one AZ)" in one.stdout
    empty = run("assess", "--layout", "a=1,b=1,c=1,d=0")
    assert "(empty)" in empty.stdout
    assert "survives any 1 AZ loss" in empty.stdout


# --- plan ----------------------------------------------------------------------------------------


def test_plan_json_is_the_optimal_layout() -> None:
    data = run_json("plan", "--managers", "7", "--zones", "a,b,c")
    assert set(data) >= KEYS
    assert data["layout"] == {"a": 3, "b": 2, "c": 2}
    assert data["tolerates_zone_failures"] == 1
    five = run_json("plan", "-n", "5", "-z", "us-east-1c,us-east-1a,us-east-1b")
    assert five["layout"] == {"us-east-1a": 2, "us-east-1b": 2, "us-east-1c": 1}


def test_plan_with_capacity_and_impaired_azs() -> None:
    data = run_json("plan", "--managers", "5", "--zones", "a,b,c,d", "--capacity", "b=1", "--impaired", "c")
    assert data["layout"] == {"a": 2, "b": 1, "c": 0, "d": 2}


def test_plan_human_output_marks_impaired_azs() -> None:
    result = run("plan", "--managers", "5", "--zones", "a,b,c,d", "--impaired", "c")
    assert result.exit_code == 0
    assert "impaired" in result.stdout
    assert "(empty)" in result.stdout


def test_plan_human_output() -> None:
    result = run("plan", "--managers", "5", "--zones", "a,b,c")
    assert result.exit_code == 0
    assert "best layout of 5 managers over 3 AZs" in result.stdout
    assert "survives any 1 AZ loss" in result.stdout


# --- recommend -----------------------------------------------------------------------------------


def test_recommend_json() -> None:
    data = run_json("recommend", "--survive-zones", "2", "--zones", "a,b,c,d,e")
    assert set(data) >= KEYS | {"zones"}
    assert data["managers"] == 5
    assert data["zones"] == ["a", "b", "c", "d", "e"]
    assert data["tolerates_zone_failures"] == 2
    nodes = run_json("recommend", "-k", "1", "-f", "2", "-z", "a,b,c,d", "--allow-even")
    assert (nodes["managers"], nodes["layout"]) == (5, {"a": 2, "b": 2, "c": 1})


def test_recommend_human_output() -> None:
    result = run("recommend", "--survive-zones", "1", "--survive-nodes", "1", "--zones", "a,b,c")
    assert result.exit_code == 0
    assert "survives any 1 AZ loss and 1 manager failure" in result.stdout
    assert "3 managers over 3 AZs" in result.stdout
    two = run("recommend", "--survive-zones", "2", "--zones", "a,b,c,d,e")
    assert "survives any 2 AZ losses" in two.stdout


# --- transition ----------------------------------------------------------------------------------


def test_transition_json_steps() -> None:
    data = run_json("transition", "--from", "a=3,b=2", "--to", "a=2,b=2,c=1")
    assert [(s["action"], s["az"]) for s in data["steps"]] == [("add", "c"), ("remove", "a")]
    assert data["steps"][-1]["layout"] == {"a": 2, "b": 2, "c": 1}
    assert data["steps"][-1]["tolerates_zone_failures"] == 1
    assert data["start"]["tolerates_zone_failures"] == 0
    assert data["target"]["layout"] == {"a": 2, "b": 2, "c": 1}


def test_transition_with_unhealthy_and_spare_workers() -> None:
    data = run_json(
        "transition",
        "--from",
        "a=3,b=2",
        "--to",
        "a=2,b=2,c=1",
        "--unhealthy",
        "a=1",
        "--spare-workers",
        "c=1",
    )
    assert [(s["action"], s["az"], s["healthy"]) for s in data["steps"]] == [
        ("promote", "c", 5),
        ("remove", "a", 5),
    ]


def test_transition_human_output() -> None:
    result = run("transition", "--from", "a=3,b=2", "--to", "a=2,b=2,c=1", "--unhealthy", "a=1")
    assert result.exit_code == 0
    assert "add c" in result.stdout
    assert "remove a" in result.stdout
    assert "○" in result.stdout  # the unhealthy manager in the starting picture
    same = run("transition", "--from", "a=1,b=1,c=1", "--to", "a=1,b=1,c=1")
    assert "nothing to do" in same.stdout


# --- bad input: one line on stderr, exit code 2 ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["assess", "--layout", "a=2,b"], "error: --layout: cannot read 'b'"),
        (["assess", "--layout", "a=2,b=x"], "error: --layout: the count for b must be a whole number"),
        (["assess", "--layout", "a=-1,b=2"], "error: --layout: the count for a cannot be negative"),
        (["assess", "--layout", "a=0,b=0"], "error: --layout has no managers"),
        (["assess", "--layout", "a=1,a=2"], "error: --layout lists AZ a twice"),
        (["assess", "--layout", ""], "error: --layout is empty"),
        (["assess", "--layout", "=2"], "error: --layout has an empty AZ name"),
        (["assess", "--layout", "a b=2"], "error: --layout: 'a b' is not a valid AZ name"),
        (["plan", "--managers", "0", "--zones", "a,b,c"], "error: --managers must be at least 1, got 0"),
        (["plan", "--managers", "-3", "--zones", "a,b,c"], "error: --managers must be at least 1, got -3"),
        (["plan", "--managers", "five", "--zones", "a,b,c"], "error: --managers must be a whole number"),
        (["plan", "--managers", "3", "--zones", ""], "error: --zones is empty"),
        (["plan", "--managers", "3", "--zones", "a,,b"], "error: --zones has an empty AZ name"),
        (["plan", "--managers", "3", "--zones", "a,b,a"], "error: --zones lists AZ a twice"),
        (["plan", "-n", "3", "-z", "a,b", "--impaired", "c"], "error: AZ c is not in --zones (a,b)"),
        (["plan", "-n", "3", "-z", "a,b", "--capacity", "a=1,b=1"], "error: 3 managers do not fit"),
        (
            ["plan", "-n", "3", "-z", "a,b", "--capacity", "a=-1"],
            "error: --capacity: the count for a cannot be",
        ),
        (
            ["recommend", "-k", "2", "-z", "a,b,c"],
            "error: surviving 2 AZ losses needs at least 5 AZs; 3 given",
        ),
        (["recommend", "-k", "-1", "-z", "a,b,c"], "error: --survive-zones must be at least 0"),
        (["recommend", "-k", "1", "-f", "x", "-z", "a,b,c"], "error: --survive-nodes must be a whole number"),
        (["transition", "--from", "a=1,b=1,c=1", "--to", "a=2,b=2,c=1"], "error: no safe order"),
        (["transition", "--from", "a=1", "--to", "a=0"], "error: --to has no managers"),
        (["transition", "--from", "a=1", "--to", "a=1", "--unhealthy", "a=2"], "error: a has 2 unhealthy"),
        (["plan", "--zones", "a,b"], "error: --managers is required, e.g. --managers 5"),
        (["plan", "-n", "3"], "error: --zones is required"),
        (["assess"], "error: --layout is required"),
        (["recommend", "--zones", "a,b,c"], "error: --survive-zones is required"),
        (["recommend", "-k", "1"], "error: --zones is required"),
        (["transition", "--to", "a=1"], "error: --from is required"),
        (["transition", "--from", "a=1"], "error: --to is required"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message), lines[0]
    assert "Traceback" not in result.output


def test_no_arguments_shows_the_help() -> None:
    result = run()
    assert "plan" in result.output
    assert "transition" in result.output
    assert "quorum" in result.output


def test_help_lists_every_command_and_its_purpose() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("plan", "assess", "recommend", "transition"):
        assert command in result.stdout


def test_version_is_the_installed_distributions() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"autojoin {importlib.metadata.version('autojoin')}\n"
