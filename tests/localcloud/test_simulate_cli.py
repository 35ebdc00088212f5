"""``autojoin simulate``: failing expectations and broken invariants exit 1, bad scenarios exit 2."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from autojoin.cli.main import app

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = str(REPO / "template.yaml")
runner = CliRunner()


def simulate(path: Path, *extra: str) -> Any:
    return runner.invoke(app, ["simulate", str(path), "--template", TEMPLATE, *extra])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_a_failed_expectation_exits_1_and_says_which(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cluster: {managers: 5, workers: 1}\n"
        "settle: 60\n"
        "steps:\n"
        "  - {at: 10, action: az_outage, zone: us-east-1a, expect: {has_leader: false, managers: 3}}\n",
    )
    result = simulate(path)
    assert result.exit_code == 1, result.stdout
    assert "expectation failed at step 1: has_leader: expected False, got True" in result.stdout
    assert "FAILED: 1 expectation(s) failed" in result.stdout
    doc = json.loads(simulate(path, "--json").stdout)
    assert doc["passed"] is False
    assert doc["failed_expectations"] == [
        {"step": 1, "key": "has_leader", "expected": False, "actual": True, "ok": False}
    ]


def test_an_invariant_broken_by_autojoin_exits_1(tmp_path: Path) -> None:
    # workers launched where no manager will ever come: autojoin holds their hooks (pending joins) but
    # nobody completes them before the heartbeat timeout: "completed before its hook times out" breaks
    path = write(
        tmp_path,
        "cluster: {exists: false, managers: 0, workers: 0, hook_timeouts: {launch: 60}}\n"
        "settle: 600\n"
        "steps:\n"
        "  - {at: 0, action: scale, group: worker, desired: 1}\n",
    )
    result = simulate(path, "--json")
    assert result.exit_code == 1, result.stdout[-2000:]
    doc = json.loads(result.stdout)
    rules = {v["rule"] for v in doc["violations"]}
    assert "lifecycle-timeout" in rules
    assert doc["failed_expectations"] == []


def test_a_crash_losing_quorum_is_a_fact_not_a_violation(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cluster: {managers: 3, workers: 0}\n"
        "settle: 5\n"
        "steps:\n"
        "  - {at: 1, action: crash, target: manager in us-east-1a}\n"
        "  - {at: 2, action: crash, target: 'manager #2', expect: {has_leader: false, managers: 1}}\n",
    )
    result = simulate(path, "--json")
    assert result.exit_code == 0, result.stdout[-2000:]
    doc = json.loads(result.stdout)
    assert doc["violations"] == []
    assert [s["state"]["managers"] for s in doc["steps"]] == [2, 1]


def test_selecting_an_instance_that_is_not_there_fails_the_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cluster: {managers: 3, workers: 0}\nsettle: 1\n"
        "steps:\n  - {at: 1, action: terminate, target: 'manager #5'}\n",
    )
    result = simulate(path)
    assert result.exit_code == 1
    assert "step 1 could not run: no manager #5: 3 InService instance(s) match" in result.stdout


def test_deliver_duplicate_and_late_events_change_nothing(tmp_path: Path) -> None:
    # i-00000000000000203 is already a member: its launch event, late and twice, must change nothing
    event = REPO / "events" / "autoscaling_launch_worker.json"
    path = write(
        tmp_path,
        "cluster: {managers: 3, workers: 3}\n"
        "settle: 300\n"
        "steps:\n"
        "  - at: 60\n"
        "    action: deliver\n"
        f"    event: {event}\n"
        "    duplicate: true\n"
        "    delay: 30\n"
        "    expect: {workers: 3, managers: 3, lifecycle: {CONTINUE: 0, ABANDON: 0}, pending_actions: 0}\n",
    )
    result = simulate(path, "--json")
    assert result.exit_code == 0, result.stdout[-3000:]
    doc = json.loads(result.stdout)
    # both copies reached OnLaunchFunction (the template's schedules run the other functions meanwhile)
    assert doc["steps"][0]["functions"]["OnLaunchFunction"] == 2
    assert doc["violations"] == []


def test_rotate_tokens_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cluster: {managers: 3, workers: 1}\n"
        "settle: 120\n"
        "steps:\n"
        "  - {at: 10, action: rotate_tokens, role: worker}\n"
        "  - {at: 20, action: scale, group: worker, desired: 2,\n"
        "     expect: {workers: 2, lifecycle: {CONTINUE: 1}}}\n",
    )
    result = simulate(path, "--json")
    assert result.exit_code == 0, result.stdout[-3000:]
    doc = json.loads(result.stdout)
    assert doc["steps"][0]["invocations"] == 4  # createSecret, setSecret, testSecret, finishSecret


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: [\n", "not valid YAML"),
        ("steps:\n  - {action: explode}\n", "steps.0.action"),
        ("steps:\n  - {action: az_outage, zone: us-west-2a}\n", "zone us-west-2a does not exist"),
        ("steps:\n  - {action: scale, group: databases, desired: 3}\n", "group 'databases' does not exist"),
        (
            "cluster: {zones: [us-east-1a], managers: {layout: {us-east-1c: 1}}}\n",
            "zone us-east-1c does not exist",
        ),
        ("steps:\n  - {action: deliver, event: nowhere.json}\n", "event file nowhere.json not found"),
        ("just a string\n", "expected a mapping"),
    ],
)
def test_bad_scenarios_exit_2_with_one_error_line(tmp_path: Path, text: str, message: str) -> None:
    result = simulate(write(tmp_path, text))
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_missing_scenario_file(tmp_path: Path) -> None:
    result = simulate(tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: scenario") and "no such file" in result.stderr


def test_selectors_leader_and_instance_id_and_the_group_s_own_repair(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cluster: {managers: 3, workers: 1}\n"
        "settle: 300\n"
        "steps:\n"
        "  - {at: 1, action: crash, target: leader, expect: {has_leader: true, managers: 2}}\n"
        # the dead leader's terminate hook (on_terminate removes its Down node) and the replacement's launch
        "  - {at: 10, action: wait, seconds: 0, expect: {managers: 3, voters: 3, lifecycle: {CONTINUE: 2}}}\n"
        # the worker's terminate hook (drained, removed) and its replacement's launch
        "  - {at: 300, action: terminate, target: i-00000000000000201, decrement: false,\n"
        "     expect: {workers: 1, lifecycle: {CONTINUE: 4, ABANDON: 0}}}\n",
    )
    result = simulate(path, "--json")
    assert result.exit_code == 0, result.stdout[-3000:]
    doc = json.loads(result.stdout)
    crashed, repaired, replaced = doc["steps"]
    assert crashed["state"]["leader"] != doc["initial"]["leader"]  # a new leader was elected
    assert crashed["invocations"] == 0  # the crash is the world's doing
    # the health check replaced the dead manager and autojoin joined the new one; the dead one's terminate
    # hook reached on_terminate, which demoted and removed its Down node: no Down voter is left
    assert (repaired["state"]["managers"], repaired["state"]["voters"]) == (3, 3)
    assert (
        replaced["functions"]["OnTerminateFunction"] >= 1 and replaced["functions"]["OnLaunchFunction"] >= 1
    )
    assert "i-00000000000000201" not in {
        m["instance_id"] for m in replaced["state"]["members"] if m["healthy"]
    }


def test_the_checker_catches_a_handler_that_leaks_a_token_and_completes_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deliberately bad OnLaunchFunction stands in for the real one: the invariants must catch it."""
    from autojoin.scenario import runner as runner_module
    from autojoin.scenario.model import load_scenario
    from autojoin.scenario.world import World  # the runner's own name for it is patched below

    leaked = "SWMTKN-1-" + "a" * 50 + "-" + "b" * 25

    class BadWorld(World):
        def __enter__(self) -> Any:
            world = super().__enter__()
            client = world.cloud.session.client("autoscaling")

            def bad(event: dict[str, Any], context: Any) -> dict[str, Any]:
                d = event["detail"]
                for _ in range(2):  # the second one fails: "No active Lifecycle Action found"
                    with contextlib.suppress(ClientError):
                        client.complete_lifecycle_action(
                            AutoScalingGroupName=d["AutoScalingGroupName"],
                            LifecycleHookName=d["LifecycleHookName"],
                            LifecycleActionToken=d["LifecycleActionToken"],
                            LifecycleActionResult="CONTINUE",
                        )
                print(f"joined with {leaked}")  # a log line with a token
                return {"outcome": "joined", "debug": leaked}

            world.cloud.register_handler("OnLaunchFunction", bad)
            return world

    monkeypatch.setattr(runner_module, "World", BadWorld)
    path = write(
        tmp_path,
        "cluster: {managers: 3, workers: 0}\nsettle: 60\n"
        "steps:\n  - {at: 0, action: scale, group: worker, desired: 1}\n",
    )
    result = runner_module.simulate(load_scenario(path), template=Path(TEMPLATE))
    assert not result.passed
    found = sorted({(v.rule, v.detail.split(" (")[0]) for v in result.all_violations})
    assert any(
        rule == "token-leak" and detail.startswith("a join token in log line ") for rule, detail in found
    )
    assert ("token-leak", "a join token in the return value of OnLaunchFunction") in found
    assert all(leaked not in v.detail for v in result.all_violations)
    # completing twice is refused by Auto Scaling ("No active Lifecycle Action"): recorded once, no breach
    assert result.final.lifecycle == {"CONTINUE": 1, "ABANDON": 0}
