"""Every shipped scenario runs from a fresh clone with exit 0, and its timeline says what it claims."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autojoin.cli.main import app
from autojoin.scenario.model import load_scenario

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = str(REPO / "template.yaml")
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
BENCHMARK_ONLY = {"worker-burst-200"}  # a fifth of the suite's time: scripts/bench_burst.py runs it
runner = CliRunner()


def simulate(path: Path, *extra: str) -> Any:
    return runner.invoke(app, ["simulate", str(path), "--template", TEMPLATE, *extra])


def simulate_json(path: Path, *extra: str) -> dict[str, Any]:
    result = simulate(path, "--json", *extra)
    assert result.exit_code == 0, (result.stderr, result.stdout[-3000:])
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_the_brief_s_scenarios_are_shipped() -> None:
    assert {p.stem for p in SCENARIOS} >= {
        "seed-3-2-loses-quorum",
        "seed-2-2-1-survives-az-loss",
        "seed-1-1-1-1-1-survives-two",
        "manager-scale-in",
        "worker-burst-200",
        "worker-burst-20",
        "bootstrap-from-nothing",
        "duplicate-and-late-events",
        "token-rotation-then-joins",
    }


@pytest.mark.parametrize("path", [p for p in SCENARIOS if p.stem not in BENCHMARK_ONLY], ids=lambda p: p.stem)
def test_every_shipped_scenario_passes(path: Path) -> None:
    result = simulate(path)
    assert result.exit_code == 0, (result.stderr, result.stdout[-3000:])
    assert "PASSED" in result.stdout
    assert "SWMTKN" not in result.output


def test_3_2_loses_quorum_when_its_bigger_az_goes_and_that_is_not_autojoin_s_fault() -> None:
    doc = simulate_json(REPO / "scenarios/seed-3-2-loses-quorum.yaml")
    assert doc["passed"] and doc["violations"] == []
    start, outage = doc["steps"]
    assert start["state"]["layout"] == {"us-east-1a": 3, "us-east-1b": 2}
    assert start["state"]["tolerance"]["tolerates_zone_failures"] == 0
    assert outage["action"] == "az_outage" and not outage["state"]["has_leader"]


def test_2_2_1_keeps_its_leader_through_the_worst_az_loss() -> None:
    doc = simulate_json(REPO / "scenarios/seed-2-2-1-survives-az-loss.yaml")
    states = [s["state"] for s in doc["steps"]]
    assert [s["has_leader"] for s in states] == [True, True, True]
    assert states[0]["tolerance"]["layout"] == {"us-east-1a": 2, "us-east-1b": 2, "us-east-1c": 1}
    assert states[1]["managers"] == 3
    # back to a 2-2-1 shape with 5 voters (the dead ones left Raft); Auto Scaling's tie-break decides
    # which of the two emptiest AZs gets the second relaunch
    assert sorted(states[2]["layout"].values()) == [1, 2, 2] and states[2]["voters"] == 5
    # 3 launches joined, 3 terminate hooks (2 dead managers, 1 dead worker) completed, nothing abandoned
    assert doc["final"]["lifecycle"] == {"CONTINUE": 6, "ABANDON": 0}


def test_1_1_1_1_1_keeps_its_leader_through_two_az_losses() -> None:
    doc = simulate_json(REPO / "scenarios/seed-1-1-1-1-1-survives-two.yaml")
    two_down = doc["steps"][2]["state"]
    assert two_down["has_leader"] and two_down["managers"] == 3
    assert two_down["down_zones"] == ["us-east-1b", "us-east-1d"]


def test_bootstrap_from_nothing_forms_one_swarm() -> None:
    doc = simulate_json(REPO / "scenarios/bootstrap-from-nothing.yaml")
    assert not doc["initial"]["has_leader"] and doc["initial"]["members"] == []
    final = doc["final"]
    assert final["has_leader"] and final["voters"] == 3 and final["workers"] == 5
    assert final["layout"] == {"us-east-1a": 1, "us-east-1b": 1, "us-east-1c": 1}
    assert final["lifecycle"] == {"CONTINUE": 8, "ABANDON": 0}


def test_the_benchmark_only_scenarios_are_valid_and_the_tests_keep_a_smaller_burst() -> None:
    big = load_scenario(REPO / "scenarios/worker-burst-200.yaml")
    small = load_scenario(REPO / "scenarios/worker-burst-20.yaml")
    assert next(t.step.desired for t in big.steps) == 202
    assert next(t.step.desired for t in small.steps) == 22


def test_duplicate_and_late_events_complete_nothing_twice() -> None:
    doc = simulate_json(REPO / "scenarios/duplicate-and-late-events.yaml")
    late, gone = doc["steps"]
    assert late["functions"]["OnLaunchFunction"] == 2  # both copies reached OnLaunchFunction
    assert gone["functions"]["OnLaunchFunction"] == 1
    assert doc["final"]["lifecycle"] == {"CONTINUE": 0, "ABANDON": 0}
    assert doc["violations"] == []


def test_joins_after_token_rotation_use_the_new_tokens() -> None:
    doc = simulate_json(REPO / "scenarios/token-rotation-then-joins.yaml")
    rotations = [s for s in doc["steps"] if s["action"] == "rotate_tokens"]
    assert [s["invocations"] for s in rotations] == [4, 4]  # create, set, test, finish
    assert doc["final"]["lifecycle"] == {"CONTINUE": 3, "ABANDON": 0}
    assert doc["final"]["workers"] == 4 and doc["final"]["managers"] == 4


def test_a_run_is_deterministic_for_its_seed() -> None:
    path = REPO / "scenarios/bootstrap-from-nothing.yaml"
    first, again = simulate_json(path), simulate_json(path)
    assert first == again
    other = simulate_json(path, "--seed", "3")
    assert other["passed"]
    assert (first["seed"], other["seed"]) == (load_scenario(path).scenario.seed, 3)
    ids = {m["instance_id"] for m in first["final"]["members"]}
    assert ids != {m["instance_id"] for m in other["final"]["members"]}  # moto's ids follow the seed
