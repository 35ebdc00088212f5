"""Replay never reports a decision the real handler would not make, and bad input never crashes it.

Each test here reproduces a defect of issue 8 ("Replay must never report a decision the real handler
would not make") and failed before its fix.
"""

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


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["replay", *args, "--template", TEMPLATE])


def worker_event(tmp_path: Path, instance_id: str, *, group: str = "demo-worker") -> Path:
    event = json.loads((EVENTS / "autoscaling_launch_worker.json").read_text())
    event["detail"]["EC2InstanceId"] = instance_id
    event["detail"]["AutoScalingGroupName"] = group
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))  # ensure_ascii: a lone surrogate is written as \udXXX, as AWS could
    return path


@pytest.mark.parametrize(
    "instance_id",
    ["ip-10-0-1-17.ec2.internal", "i-00000000000000203\udc80", "i-0000000000000020\ud800"],
    ids=["hostname", "trailing-lone-surrogate", "lone-surrogate-inside"],
)
def test_an_id_the_handler_rejects_is_reported_rejected_not_joined(tmp_path: Path, instance_id: str) -> None:
    result = invoke(str(worker_event(tmp_path, instance_id)), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # the handler's own validation saw the id as the event gave it (EC2InstanceId must be i-...)
    assert doc["decision"]["outcome"] == "rejected", doc["decision"]
    assert doc["lifecycle"] == []
    assert not any(s.startswith("launched") for s in doc["setup"]), doc["setup"]


def test_a_lone_surrogate_does_not_crash_the_plain_output(tmp_path: Path) -> None:
    result = invoke(str(worker_event(tmp_path, "i-00000000000000203\udc80")))
    assert result.exit_code == 0, result.output
    assert "decision:" in result.stdout and "rejected" in result.stdout
    assert "Traceback" not in result.output


def test_a_well_formed_new_id_is_launched_under_that_very_id(tmp_path: Path) -> None:
    result = invoke(str(worker_event(tmp_path, "i-0abc1234def567890")), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["decision"]["outcome"] == "joined"
    assert doc["setup"][0].startswith("launched i-0abc1234def567890 into demo-worker")
    assert [(r["instance_id"], r["result"]) for r in doc["lifecycle"]] == [
        ("i-0abc1234def567890", "CONTINUE")
    ]
    assert "i-0abc1234def567890" in {m["instance_id"] for m in doc["cluster"]["members"]}


def test_an_instance_of_the_other_group_is_not_duplicated(tmp_path: Path) -> None:
    # i-00000000000000101 is manager 1 of the default state; the event says it launched into the workers
    result = invoke(str(worker_event(tmp_path, "i-00000000000000101")), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    ids = [m["instance_id"] for m in doc["cluster"]["members"]]
    assert len(ids) == len(set(ids)), ids
    assert ids.count("i-00000000000000101") == 1
    launched = [s for s in doc["setup"] if s.startswith("launched")]
    late = [s for s in doc["setup"] if "already InService" in s]
    assert not (launched and late), doc["setup"]
    assert not launched
    assert any("demo-manager" in s for s in doc["setup"]), doc["setup"]
    assert doc["cluster"]["managers"] == 3 and doc["cluster"]["workers"] == 2
    assert doc["decision"].get("outcome") != "joined"


def _one_error_line(result: Any) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return str(lines[0])


def test_deeply_nested_json_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert "nested" in _one_error_line(invoke(str(path)))


def test_deeply_nested_detail_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "deep-detail.json"
    event = (EVENTS / "autoscaling_launch_worker.json").read_text()
    path.write_text(event.replace('"Origin": "EC2"', '"Origin": ' + "[" * 5000 + "]" * 5000))
    result = invoke(str(path))
    assert result.exit_code in {0, 2}, result.output
    assert "Traceback" not in result.output and "RecursionError" not in result.output
    if result.exit_code == 2:
        _one_error_line(result)


def test_a_utf8_bom_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + (EVENTS / "autoscaling_launch_worker.json").read_bytes())
    assert "BOM" in _one_error_line(invoke(str(path)))


def test_a_crash_inside_replay_is_not_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 1 means a token leaked; a bug of replay itself is exit 3 with one line."""
    import autojoin.scenario.replay as module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "replay", broken)
    result = invoke(str(EVENTS / "autoscaling_launch_worker.json"))
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "RuntimeError" in lines[0]


@pytest.mark.parametrize(
    "event",
    [
        {  # EventBridge Scheduler (Powertools' tests/events/eventBridgeSchedulerEvent.json)
            "version": "0",
            "id": "d167b752-343a-4b28-afd6-d4de056319e8",
            "detail-type": "Scheduled Event",
            "source": "aws.scheduler",
            "account": "533568316194",
            "time": "2025-02-20T16:03:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/aaaaa"],
            "detail": "{}",
        },
        {  # `sam local generate-event cloudwatch scheduled-event`: no version
            "id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "1970-01-01T00:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/my-schedule"],
            "detail": {},
        },
    ],
    ids=["scheduler-string-detail", "sam-scheduled-no-version"],
)
def test_envelopes_of_other_services_match_no_rule(tmp_path: Path, event: dict[str, Any]) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(event))
    result = invoke(str(path), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert isinstance(doc["decision"], str) and doc["decision"].startswith("ignored: no rule"), doc[
        "decision"
    ]
    assert doc["invocations"] == []


def test_the_template_is_found_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --template and no template.yaml here: $AUTOJOIN_TEMPLATE, else the one shipped in the package."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOJOIN_TEMPLATE", raising=False)
    event = str(EVENTS / "autoscaling_launch_worker.json")
    shipped = runner.invoke(app, ["replay", event, "--json"])
    assert shipped.exit_code == 0, shipped.output
    assert json.loads(shipped.stdout)["decision"]["outcome"] == "joined"

    monkeypatch.setenv("AUTOJOIN_TEMPLATE", TEMPLATE)
    from_env = runner.invoke(app, ["replay", event, "--json"])
    assert from_env.exit_code == 0, from_env.output

    monkeypatch.setenv("AUTOJOIN_TEMPLATE", str(tmp_path / "nowhere.yaml"))
    missing = runner.invoke(app, ["replay", event])
    assert "$AUTOJOIN_TEMPLATE" in _one_error_line(missing)
