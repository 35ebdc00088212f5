"""The reconciler's "Done when" scenarios, read through their JSON timelines: what it changed, and when.

(test_simulate_scenarios.py runs every shipped scenario for PASSED; these look at the calls behind it.)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from autojoin.cli.main import app

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = str(REPO / "template.yaml")
runner = CliRunner()
# what the reconciler may change without being a rebalance: its own state items (snapshot, record, lease)
STATE_WRITES = {"PutItem", "DeleteItem", "UpdateItem"}


def run(name: str, *flags: str) -> dict[str, Any]:
    result = runner.invoke(
        app, ["simulate", str(REPO / "scenarios" / f"{name}.yaml"), "--template", TEMPLATE, "--json", *flags]
    )
    assert result.exit_code == 0, (result.stderr, result.stdout[-3000:])
    doc: dict[str, Any] = json.loads(result.stdout)
    assert doc["passed"] and doc["violations"] == []
    return doc


def reconciler_changes(doc: dict[str, Any]) -> Counter[str]:
    out: Counter[str] = Counter()
    for step in doc["steps"]:
        for key, n in step["changes"].items():
            fn, _, op = key.partition(":")
            if fn == "ReconcileFunction":
                out[op] += n
    return out


def test_3_2_gets_a_third_az_by_one_surge_and_one_retirement() -> None:
    doc = run("reconcile-3-2-gets-a-third-az")
    changes = reconciler_changes(doc)
    assert changes["SetDesiredCapacity"] == 1
    assert changes["TerminateInstanceInAutoScalingGroup"] == 1
    assert doc["final"]["layout"] == {"us-east-1a": 2, "us-east-1b": 2, "us-east-1c": 1}
    assert doc["final"]["voters"] == 5


def test_half_an_hour_without_the_az_holding_two_managers() -> None:
    doc = run("reconcile-az-outage-half-hour")
    assert all(step["state"]["has_leader"] for step in doc["steps"])
    changes = reconciler_changes(doc)
    assert not {"SetDesiredCapacity", "TerminateInstanceInAutoScalingGroup"} & set(changes), changes
    assert doc["final"]["voters"] == 5 and doc["final"]["managers"] == 5
    assert sorted(doc["final"]["layout"].values()) == [1, 2, 2]


def test_flapping_az_health_causes_no_churn() -> None:
    doc = run("reconcile-flapping-az-no-churn")
    changes = reconciler_changes(doc)
    assert set(changes) <= STATE_WRITES | {"CompleteLifecycleAction"}, changes
    assert sum(step["functions"].get("ReconcileFunction", 0) for step in doc["steps"]) > 8  # it did run


def test_dry_run_changes_nothing() -> None:
    doc = run("reconcile-dry-run-changes-nothing")
    changes = reconciler_changes(doc)
    assert set(changes) == {"PutItem"}, changes  # the snapshot and its own decision log, nothing else
    assert doc["final"]["layout"] == {"us-east-1a": 3, "us-east-1b": 2, "us-east-1c": 0}


def test_a_launch_whose_event_was_lost_still_joins() -> None:
    doc = run("reconcile-lost-launch-event-still-joins")
    changes = reconciler_changes(doc)
    assert changes["CompleteLifecycleAction"] == 1
    assert all("OnLaunchFunction" not in step["functions"] for step in doc["steps"])
    assert doc["final"]["lifecycle"] == {"CONTINUE": 1, "ABANDON": 0}


LOST_AND_KILLED = ("--lose", "0.2", "--kill", "0.05")


def test_a_lost_launch_outlives_a_killed_reconciler_run() -> None:
    # fault seed 21: the run at 5 min records the lost launch, the run at 10 min dies before it reads its
    # record. The record's heartbeat keeps the hook alive past 15 min, so the run at 15 min finishes it
    # (before, the hook timed out at 15 min: ABANDON)
    doc = run("reconcile-lost-launch-event-still-joins", *LOST_AND_KILLED, "--fault-seed", "21")
    assert doc["faults"] == ["kill ReconcileFunction before call 6 (dynamodb.GetItem)"]
    changes = reconciler_changes(doc)
    assert (changes["RecordLifecycleActionHeartbeat"], changes["CompleteLifecycleAction"]) == (1, 1)
    assert doc["final"]["lifecycle"] == {"CONTINUE": 1, "ABANDON": 0}


def test_a_launch_whose_handler_died_after_the_join_is_completed_by_the_reconciler() -> None:
    # fault seed 16: us-east-1c's last recovery (14 min) launches a worker; OnLaunchFunction dies after
    # the node joined, before it completed, and Lambda's two retries find the idempotency record in
    # progress. The reconciler records the member still in Pending:Wait and completes it (before, it only
    # relabelled it; the hook timed out at 29 min: ABANDON, a healthy worker terminated)
    doc = run("reconcile-flapping-az-no-churn", *LOST_AND_KILLED, "--fault-seed", "16")
    assert "kill OnLaunchFunction before call 8 (dynamodb.DeleteItem)" in doc["faults"]
    changes = reconciler_changes(doc)
    assert (changes["RecordLifecycleActionHeartbeat"], changes["CompleteLifecycleAction"]) == (2, 2)
    assert doc["final"]["lifecycle"] == {"CONTINUE": 15, "ABANDON": 0}


def test_replay_of_the_schedule_with_and_without_the_dry_run_flag(tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    state.write_text("managers: {layout: {us-east-1a: 3, us-east-1b: 2}}\nworkers: 1\n")
    changed = {}
    for flag in ([], ["--dry-run"]):
        args = ["replay", str(REPO / "events/scheduled_reconcile.json"), "--state", str(state), "--json"]
        result = runner.invoke(app, [*args, "--template", TEMPLATE, *flag])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc["decision"]["step"].startswith("launch in us-east-1c")
        changed[bool(flag)] = {
            c["operation"] for c in doc["calls"] if c["operation"] not in {"PutItem", "DeleteItem"}
        }
        changed[bool(flag)] -= {
            c["operation"] for c in doc["calls"] if c["operation"].startswith(("Describe", "Get", "Query"))
        }
    assert changed[False] == {"UpdateAutoScalingGroup", "SetDesiredCapacity"}
    assert changed[True] == set()
