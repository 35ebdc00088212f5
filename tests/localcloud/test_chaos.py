"""Chaos runs (scenario/chaos.py, ``autojoin simulate --chaos``): generated timelines are valid, seeded
scenarios; one runs with faults and holds every invariant; a failing one is saved and reproduces."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml
from typer.testing import CliRunner

from autojoin.cli.main import app
from autojoin.localcloud.faults import FaultPlan
from autojoin.scenario import chaos
from autojoin.scenario.model import load_scenario, parse_scenario

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
PLAN = FaultPlan(throttle=0.2, errors=0.05, duplicate=0.5, late=0.2, kill=0.05)
cli = CliRunner()


def test_timelines_are_valid_scenarios_and_the_same_seed_gives_the_same_ones(tmp_path: Path) -> None:
    actions: set[str] = set()
    for i in range(60):
        doc = chaos.generate(7, i, PLAN)
        assert doc == chaos.generate(7, i, PLAN)
        loaded = parse_scenario(doc, Path(f"{doc['name']}.yaml"))
        actions |= {s.step.action for s in loaded.steps}
        assert loaded.scenario.faults is not None and loaded.scenario.faults.throttle == 0.2
        down = [s.step.zone for s in loaded.steps if s.step.action == "az_outage"]
        up = [s.step.zone for s in loaded.steps if s.step.action == "az_recover"]
        assert Counter(down) == Counter(up)  # every zone is back before the end
    assert {"scale", "crash", "terminate", "az_outage", "instance_refresh", "rotate_tokens"} <= actions
    assert chaos.generate(7, 0, PLAN) != chaos.generate(8, 0, PLAN)
    path = tmp_path / "t.yaml"
    path.write_text(chaos.to_yaml(chaos.generate(7, 3, PLAN), ["a problem"]))
    assert load_scenario(path).scenario == parse_scenario(chaos.generate(7, 3, PLAN), path).scenario


def test_a_timeline_with_throttling_repeats_kills_and_late_events_holds_every_invariant() -> None:
    # seed 3, timeline 37: 3 managers and 2 workers; a crash, a scale, a token rotation
    (outcome,) = chaos.run(1, 3, PLAN, template=TEMPLATE, first=37)
    assert [s["action"] for s in outcome.document["steps"]] == ["crash", "scale", "rotate_tokens"]
    assert outcome.faults, "the plan injected nothing: the run proves nothing"
    assert outcome.passed, outcome.problems


def test_a_failing_timeline_is_saved_and_reproduces(tmp_path: Path) -> None:
    # two timelines in two processes (--jobs): both are reported and saved, as a serial run would
    args = ["simulate", "--chaos", "2", "--jobs", "2", "--seed", "4", "--template", str(TEMPLATE)]
    hostile = ["--throttle", "1", "--no-sdk-retries", "--save", str(tmp_path)]
    result = cli.invoke(app, [*args, *hostile])
    assert result.exit_code == 1, result.output
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == ["chaos-4-0.yaml", "chaos-4-1.yaml"]
    assert (
        "[2/2] timeline" in result.output and "0 passed, 2 failed, 0 unsurvivable; injected" in result.output
    )
    assert "no guard survives" not in result.output  # said only when a blow is listed
    saved = tmp_path / "chaos-4-0.yaml"
    assert f"-> {saved}" in result.output
    text = saved.read_text()
    assert text.startswith("# ")  # the problems found, as comments
    assert yaml.safe_load(text)["faults"]["throttle"] == 1.0
    again = cli.invoke(app, ["simulate", str(saved), "--json", "--template", str(TEMPLATE)])
    assert again.exit_code == 1
    doc = json.loads(again.stdout)
    problems = [line.removeprefix("# ") for line in text.splitlines() if line.startswith("# ")]
    found = [
        (f"step {v['step']}: " if v["step"] is not None else "") + f"{v['rule']}: {v['detail']}"
        for v in doc["violations"]
    ]
    assert found, "a run where every AWS call fails broke nothing"
    assert found == problems[: len(found)]


def test_a_step_aws_refused_is_skipped_and_autojoin_s_problems_are_not() -> None:
    from types import SimpleNamespace

    refused = "RefreshInProgress: An Instance Refresh is already in progress and blocks the execution of this"
    result = SimpleNamespace(
        all_violations=["step 2: az-tolerance: managers 3-2-1 survive 0 AZ loss(es)"],
        failed_checks=[(3, "managers: 6 != 7")],
        errors=[(4, refused), (5, "LocalCloudError: something autojoin broke")],
    )
    problems, skipped = chaos.problems_of(result)
    assert skipped == [f"step 4: {refused}"]
    assert problems == [
        "step 2: az-tolerance: managers 3-2-1 survive 0 AZ loss(es)",
        "step 3: managers: 6 != 7",
        "step 5: LocalCloudError: something autojoin broke",
    ]


def test_an_outage_striking_a_scale_in_through_four_voters_is_unsurvivable_not_failed(tmp_path: Path) -> None:
    # seed 502, timeline 4 (a failure until this rule): a 7 -> 3 scale-in at 2-2-1
    # removes a us-east-1b manager; us-east-1a's outage strikes the 4 voters in the same second
    plan = FaultPlan(throttle=0.2, duplicate=0.5)
    (outcome,) = chaos.run(1, 502, plan, template=TEMPLATE, first=4, save_dir=tmp_path)
    assert not outcome.passed and not outcome.failed
    assert outcome.unsurvivable == [
        "step 4: az outage us-east-1a struck 4 voters 0s after autojoin removed one of 5 on the way down, "
        "leaving 2 of 4 up: no layout of 4 voters over 3 zones survives losing one, and the guard takes the "
        "next removal at its next pass (60s)"
    ]
    assert "step None: has_leader: expected True, got False" in outcome.problems  # still listed
    saved = (tmp_path / "chaos-502-4.yaml").read_text()
    assert saved.startswith("# UNSURVIVABLE step 4: az outage us-east-1a struck 4 voters")
    # the saved file on its own: its expectations fail (exit 1), and the blow is named
    alone = cli.invoke(app, ["simulate", str(tmp_path / "chaos-502-4.yaml"), "--template", str(TEMPLATE)])
    assert alone.exit_code == 1, alone.output
    assert "! unsurvivable blow at step 4: az outage us-east-1a struck 4 voters" in alone.output
    # from the command line: timelines 0-4 of seed 502, the last one unsurvivable; the run exits 0
    args = ["simulate", "--chaos", "5", "--seed", "502", "--throttle", "0.2", "--duplicate", "0.5"]
    result = cli.invoke(app, [*args, "--jobs", "2", "--template", str(TEMPLATE)])
    assert result.exit_code == 0, result.output
    assert "timeline 4 (chaos-502-4) UNSURVIVABLE" in result.output
    assert "4 passed, 0 failed, 1 unsurvivable (a blow no guard survives, listed above)" in result.output


def test_a_problem_before_the_blow_still_fails_the_timeline() -> None:
    from types import SimpleNamespace

    from autojoin.scenario.invariants import Violation

    blow = [(4, "az outage us-east-1a struck 4 voters")]
    after = SimpleNamespace(
        unsurvivable=blow,
        all_violations=[Violation("lifecycle-unfinished", "1 instance(s)"), Violation("x", "y", 4)],
        failed_checks=[(None, "has_leader"), (5, "managers")],
        errors=[(3, "RefreshInProgress: An Instance Refresh is already in progress")],  # skipped: no matter
    )
    assert chaos.unsurvivable_of(after) == ["step 4: az outage us-east-1a struck 4 voters"]
    for earlier in (
        {"all_violations": [Violation("az-tolerance", "2-2-3", 3)]},
        {"failed_checks": [(2, "managers")]},
        {"errors": [(3, "LocalCloudError: something autojoin broke")]},
    ):
        before = SimpleNamespace(**{**vars(after), **earlier})
        assert chaos.unsurvivable_of(before) == [], earlier
    assert chaos.unsurvivable_of(SimpleNamespace(**{**vars(after), "unsurvivable": []})) == []


def test_the_target_run_s_timeline_383_holds_every_invariant() -> None:
    # seed 500, timeline 383 of the README's target run: the leader (us-east-1c, 2-2-3) crashes; the terminate
    # hook's first run is throttled, so its replacement launches beside a Down voter still in Raft's N. It
    # joined at once (2-2-3 + 1 Down of 8 survives no AZ loss); it now waits for the removal (launch.py)
    (outcome,) = chaos.run(1, 500, FaultPlan(throttle=0.2, duplicate=0.5), template=TEMPLATE, first=383)
    assert [s["action"] for s in outcome.document["steps"]][4] == "crash"
    assert outcome.faults.get("ThrottlingException"), "the throttled lease write is what opened the window"
    assert outcome.passed, outcome.problems


def test_a_manager_whose_launch_died_after_its_join_is_completed_not_abandoned() -> None:
    # seed 7, timeline 22 of `--chaos 30 --seed 7 --lose 0.2 --kill 0.05`: 3 managers scaled to 7.
    # OnLaunchFunction dies after a manager joined, before CompleteLifecycleAction; Lambda's retries find
    # its idempotency record in progress. The reconciler now completes it; before, its hook timed out
    # (ABANDON) and the layout went from 2-1-2 to 1-2-3 (az-tolerance)
    (outcome,) = chaos.run(1, 7, FaultPlan(kill=0.05, lose=0.2), template=TEMPLATE, first=22)
    assert outcome.faults.get("kill") and outcome.faults.get("lost"), outcome.faults
    assert outcome.passed, outcome.problems
