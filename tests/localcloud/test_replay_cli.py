"""``autojoin replay``: the STATE file, the human and JSON outputs, and bad input (exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autojoin.cli.main import app

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = str(REPO / "template.yaml")
EVENTS = REPO / "events"
runner = CliRunner()
BAD_CAUSE = json.dumps(
    {"Cause": "NOPE", "AutoScalingGroupName": "g", "CapacityToTerminate": [], "Instances": []}
)


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["replay", *args, "--template", TEMPLATE])


def test_json_document_has_the_documented_keys() -> None:
    result = invoke(str(EVENTS / "autoscaling_launch_worker.json"), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {"decision", "calls", "lifecycle", "cluster"} <= set(doc)
    assert doc["input"] == {
        "shape": "eventbridge",
        "describe": "EventBridge event aws.autoscaling / EC2 Instance-launch Lifecycle Action",
    }
    call = doc["calls"][0]
    assert set(call) == {"service", "operation", "params", "function", "at"}
    cluster = doc["cluster"]
    for key in ("has_leader", "leader", "managers", "voters", "workers", "layout", "tolerance", "members"):
        assert key in cluster
    assert set(cluster["tolerance"]) >= {
        "managers",
        "quorum",
        "tolerates_zone_failures",
        "tolerates_node_failures",
    }
    assert cluster["leader"] == "i-00000000000000101"  # the state's own ids, not moto's
    assert {m["instance_id"] for m in cluster["members"]} >= {"i-00000000000000101", "i-00000000000000202"}


def test_human_output_shows_decision_calls_lifecycle_and_cluster() -> None:
    result = invoke(str(EVENTS / "autoscaling_launch_manager.json"))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for text in (
        "decision:",
        '"outcome": "joined"',
        "AWS calls",
        "CompleteLifecycleAction",
        "lifecycle completions",
    ):
        assert text in out
    assert "resulting cluster" in out and "managers 4 healthy of 4 voters" in out
    assert "SWMTKN" not in out


def test_an_ignored_input_is_an_honest_decision_with_exit_0() -> None:
    result = invoke(str(EVENTS / "autoscaling_launch_unknown_group.json"))
    assert result.exit_code == 0
    assert "ignored: group legacy-web-asg is not a group of this cluster" in result.stdout


def test_state_file_sets_the_cluster(tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    state.write_text(
        "cluster: demo\n"
        "zones: [us-east-1a, us-east-1b, us-east-1c]\n"
        "managers: {layout: {us-east-1a: 1, us-east-1b: 0, us-east-1c: 1}}\n"
        "workers: 4\n"
    )
    result = invoke(str(EVENTS / "autoscaling_launch_manager.json"), "--state", str(state), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["decision"]["outcome"] == "joined"
    # Auto Scaling puts the new manager in the AZ with the fewest: us-east-1b
    assert doc["setup"][0] == "launched i-00000000000000104 into demo-manager in us-east-1b"
    assert doc["cluster"]["layout"] == {"us-east-1a": 1, "us-east-1b": 1, "us-east-1c": 1}
    assert doc["cluster"]["workers"] == 4


def test_a_late_event_for_a_member_changes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "late.yaml"
    state.write_text(
        "managers:\n  instances:\n"
        + "".join(
            f"    - {{id: i-0000000000000010{n}, az: us-east-1{z}}}\n"
            for n, z in ((1, "a"), (2, "b"), (3, "c"), (4, "a"))
        )
    )
    result = invoke(str(EVENTS / "autoscaling_launch_manager.json"), "--state", str(state), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    # the handler's own answer to a late notice: the instance is already a member with its role, so
    # nothing is offered and no lifecycle action is completed (there is none open)
    assert doc["decision"]["outcome"] == "already_member", doc["decision"]
    assert doc["decision"]["reason"] == "already a member with the right role"
    assert "i-00000000000000104 is already InService: the event arrives late (no open action)" in doc["setup"]
    assert doc["lifecycle"] == []
    assert doc["cluster"]["managers"] == 4


def test_an_open_action_in_the_state_is_the_one_the_event_notifies(tmp_path: Path) -> None:
    state = tmp_path / "pending.yaml"
    state.write_text(
        "workers:\n  instances:\n"
        "    - {id: i-00000000000000201, az: us-east-1a}\n"
        "    - {id: i-00000000000000203, az: us-east-1b, lifecycle_state: 'Pending:Wait'}\n"
    )
    result = invoke(str(EVENTS / "autoscaling_launch_worker.json"), "--state", str(state), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["decision"]["outcome"] == "joined"
    assert [(r["instance_id"], r["result"]) for r in doc["lifecycle"]] == [
        ("i-00000000000000203", "CONTINUE")
    ]
    assert doc["cluster"]["workers"] == 2
    assert {m["az"] for m in doc["cluster"]["members"] if m["role"] == "worker"} == {
        "us-east-1a",
        "us-east-1b",
    }


def _bad(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t: [str(t / "missing.json")], "no such file"),
        (lambda t: [str(_bad(t, "x.json", "{not json"))], "not JSON"),
        (lambda t: [str(_bad(t, "y.json", '{"hello": "world"}'))], "unknown event shape"),
        (lambda t: [str(_bad(t, "z.json", "[1, 2]"))], "must be a JSON object"),
        (
            lambda t: [str(_bad(t, "c.json", BAD_CAUSE))],
            "Cause 'NOPE'",
        ),
        (
            lambda t: [
                str(EVENTS / "autoscaling_launch_worker.json"),
                "--state",
                str(_bad(t, "s.yaml", "zones: [us-east-1a]\nmanagers: {layout: {us-east-1b: 1}}\n")),
            ],
            "zone us-east-1b does not exist",
        ),
        (
            lambda t: [
                str(EVENTS / "autoscaling_launch_worker.json"),
                "--state",
                str(_bad(t, "s.yaml", "zones: [a\n")),
            ],
            "not valid YAML",
        ),
        (
            lambda t: [
                str(EVENTS / "autoscaling_launch_worker.json"),
                "--state",
                str(_bad(t, "s.yaml", "colour: red\n")),
            ],
            "unknown field colour",
        ),
        (
            lambda t: [str(EVENTS / "autoscaling_launch_worker.json"), "--state", str(t / "none.yaml")],
            "no such file",
        ),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path: Path, make_args: Any, message: str) -> None:
    result = invoke(*make_args(tmp_path))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_missing_template_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["replay", str(EVENTS / "autoscaling_launch_worker.json"), "--template", str(tmp_path / "t.yaml")],
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "no such template" in result.stderr


def test_no_cluster_yet_the_first_manager_bootstraps_and_a_worker_waits(tmp_path: Path) -> None:
    state = tmp_path / "empty.yaml"
    state.write_text("exists: false\nmanagers: 0\nworkers: 0\n")
    first = invoke(str(EVENTS / "autoscaling_launch_manager.json"), "--state", str(state), "--json")
    assert first.exit_code == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["decision"]["outcome"] == "bootstrapped"
    assert [(r["instance_id"], r["result"]) for r in doc["lifecycle"]] == [
        ("i-00000000000000104", "CONTINUE")
    ]
    assert doc["cluster"]["has_leader"] and doc["cluster"]["leader"] == "i-00000000000000104"
    # init stored both tokens from the node side, redacted in the record
    puts = [c for c in doc["calls"] if c["operation"] == "PutSecretValue"]
    assert len(puts) == 2 and all(p["params"]["SecretString"] == "***" for p in puts)

    worker = invoke(str(EVENTS / "autoscaling_launch_worker.json"), "--state", str(state), "--json")
    assert worker.exit_code == 0, worker.stderr
    doc = json.loads(worker.stdout)
    assert doc["decision"]["outcome"] == "pending"  # held in its hook until a manager exists
    assert doc["lifecycle"] == []
    assert any(c["operation"] == "RecordLifecycleActionHeartbeat" for c in doc["calls"])


def test_a_rotation_step_without_a_cluster_is_the_function_s_decision(tmp_path: Path) -> None:
    state = tmp_path / "empty.yaml"
    state.write_text("exists: false\nmanagers: 0\nworkers: 0\n")
    result = invoke(
        str(EVENTS / "secretsmanager_rotation_create_secret.json"), "--state", str(state), "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["decision"] == {
        "role": "manager",
        "step": "createSecret",
        "action": "no cluster yet: nothing to rotate or test",
    }


def test_an_event_naming_another_teams_hook_is_left_alone(tmp_path: Path) -> None:
    event = json.loads((EVENTS / "autoscaling_launch_worker.json").read_text())
    event["detail"]["LifecycleHookName"] = "my-launch-hook"
    path = tmp_path / "e.json"
    path.write_text(json.dumps(event))
    result = invoke(str(path), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (
        "hook my-launch-hook is not in template.yaml: added to the group as another team's hook"
        in doc["setup"]
    )
    assert doc["decision"].startswith("ignored: no rule in template.yaml matches")  # the rule names its hook
    assert doc["lifecycle"] == [] and doc["invocations"] == []
