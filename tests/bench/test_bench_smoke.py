"""`make bench`'s pieces at their smallest size, only to keep the code working: each runs and its output has
the shape and the values the report relies on (joins that happened, calls that were counted, sections that
were written). No timing is asserted anywhere: the benchmarks measure, the tests never do."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.build.conftest import check_build  # noqa: F401 - the fixture: `make build-check`, cached

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_smoke_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path, *argv: str) -> dict[str, Any]:
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, *argv, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.is_file(), f"{argv[0]} wrote no JSON (exit {done.returncode}): {done.stderr[-2000:]}"
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


@pytest.fixture(scope="module")
def calls() -> dict[str, Any]:
    doc: dict[str, Any] = _script("bench_calls").measure(ROOT / "template.yaml")
    return doc


def test_calls_cover_every_event_type_cold_and_warm(calls: dict[str, Any]) -> None:
    events = calls["events"]
    expected = {
        "launch hook (worker)",
        "launch hook (manager)",
        "terminate hook (worker)",
        "terminate hook (manager)",
        "termination policy (worker)",
        "termination policy (manager)",
        "guard tick",
        "reconcile tick",
        "launch result",
        "rotation: createSecret",
        "rotation: setSecret",
        "rotation: testSecret",
        "rotation: finishSecret",
    }
    assert expected <= set(events)
    for name in expected:
        for temp in ("cold", "warm"):
            t = events[name][temp]
            assert t is not None and t["invocations"] >= 1, (name, temp)
            assert t["calls"] == sum(t["by_operation"].values())
            # every call above the minimum carries its reason, and the minimum is really made
            assert t["calls"] >= t["minimum"] + sum(x["extra_calls"] for x in t["above_minimum"].values())
            assert t["missing_from_minimum"] == [], (name, temp)


def test_calls_a_warm_launch_reads_no_token_and_a_cold_one_reads_it_once(calls: dict[str, Any]) -> None:
    for role in ("worker", "manager"):
        launch = calls["events"][f"launch hook ({role})"]
        assert launch["cold"]["by_operation"]["secretsmanager.GetSecretValue"] == 1
        assert "secretsmanager.GetSecretValue" not in launch["warm"]["by_operation"]
        assert launch["cold"]["by_operation"]["autoscaling.CompleteLifecycleAction"] == 1
        assert launch["cold"]["minimum"] == launch["warm"]["minimum"] + 1


def test_pool_burst_joins_every_launch_with_one_token_read_per_environment() -> None:
    result = _script("bench_pool").run_burst(launches=4, pool=2)
    assert result["events_delivered"] == 4
    assert result["handled"] == 4 and sum(result["per_environment"]) == 4
    assert result["errors"] == 0, result["error_samples"]
    assert result["all_joined"] and result["workers_in_swarm"] == 2 + 4
    assert result["lifecycle"] == {"CONTINUE": 4}
    assert 1 <= result["get_secret_value_calls"] <= 2  # one per environment that handled an event, at most
    assert result["launches_per_s"] > 0
    # the reconciler's follow-up of each launch result is not the burst's: its rules were off while settling
    assert result["rules_off_after_burst"] and all("Reconcile" in r for r in result["rules_off_after_burst"])


def test_termination_policy_bench_decides_for_every_offered_instance(tmp_path: Path) -> None:
    doc = _run(tmp_path, "scripts/bench_termination_policy.py", "--instances", "30", "--repeat", "1")
    assert doc["instances"] == 30 and doc["aws_budget_ms"] == 2000
    worker, manager = doc["cases"]["worker group"], doc["cases"]["manager group"]
    assert worker["allowed"] == 30  # 1,000 to terminate among 30 drained-or-not workers: every one
    assert 1 <= manager["allowed"] <= 3  # never more than Auto Scaling asked for (1 per zone)
    for case in (worker, manager):
        assert case["parse_ms"] > 0 and case["decide_ms"] > 0 and case["input_bytes"] > 1000
        assert case["ratio"] == pytest.approx(case["decide_ms"] / case["parse_ms"])


def test_replay_bench_reports_replay_beside_import_boto3(tmp_path: Path) -> None:
    doc = _run(tmp_path, "scripts/bench_replay.py", "--runs", "1")
    assert set(doc) == {"boto3", "replay", "runs"}
    assert doc["replay"]["command"].startswith("autojoin replay ")
    assert doc["replay"]["ratio"] == pytest.approx(doc["replay"]["median"] / doc["boto3"]["median"])


def test_burst_bench_passes_a_2_launch_burst(tmp_path: Path) -> None:
    doc = _run(tmp_path, "scripts/bench_burst.py", "--scenario", "tests/bench/fixtures/worker-burst-2.yaml")
    assert doc["passed"] is True and doc["exit"] == 0
    assert doc["workers"] == 4 and doc["lifecycle"]["CONTINUE"] >= 2
    assert doc["cpu_s"] > 0 and doc["boto3_cpu_s"] > 0


def test_cold_start_bench_sizes_and_ratios_every_function(tmp_path: Path, check_build: Path) -> None:  # noqa: F811
    doc = _run(tmp_path, "scripts/bench_cold_start.py", "--build-dir", str(check_build), "--runs", "1")
    built = {p.parent.name for p in check_build.glob("*/app.py")}
    assert set(doc["functions"]) == built and len(built) == 5
    assert doc["layer_bytes"] > 1_000_000  # Powertools and pydantic are in it
    for f in doc["functions"].values():
        assert 0 < f["bytes"] < doc["layer_bytes"]  # a function's own code is small beside the layer
        assert f["import_ratio"] > 0 and f["first_call_ms"] >= f["import_ms"]


def test_report_writes_every_section_and_says_what_did_not_run(tmp_path: Path, calls: dict[str, Any]) -> None:
    report = _script("bench_report")
    doc = {
        "meta": {
            "started": "2026-01-01 00:00 UTC",
            "total_seconds": 61.0,
            "quick": True,
            "python": "3.11",
            "machine": "x86_64",
            "cpus": 2,
            "load_average_end": 1.0,
        },
        "pieces": {
            "resilience": {"status": "not run", "why": "scripts/bench_resilience.py is not in this checkout"},
            "calls": {"status": "ok", "command": "c", "exit": 0, "seconds": 1.0, "data": calls},
            "policy": {"status": "failed", "command": "p", "exit": 1, "seconds": 1.0, "why": "boom"},
        },
    }
    written = report.write_report(doc, tmp_path / "docs", tmp_path / "out", plots=False)
    md = (tmp_path / "docs" / "benchmarks.md").read_text()
    for title in (
        "Resilience against plain Auto Scaling",
        "Cold start",
        "AWS calls per event",
        "Termination policy",
        "Burst",
        "Replay and simulate",
        "Real swarm (lab)",
    ):
        assert f"## {title}" in md
    assert "**Not run**: scripts/bench_resilience.py is not in this checkout" in md
    assert "**Failed**: boom" in md
    launch = calls["events"]["launch hook (worker)"]
    cold, warm = launch["cold"], launch["warm"]
    row = f"| launch hook (worker) | OnLaunchFunction | {cold['minimum']} / {cold['calls']} | "
    assert row + f"{warm['minimum']} / {warm['calls']} |" in md
    assert "Powertools idempotency" in md  # the reasons for the calls above the minimum are written
    assert "1.0 minutes" in md and "![" not in md  # no plots asked for: no image referenced
    saved = json.loads((tmp_path / "docs" / "benchmarks.json").read_text())
    assert saved["pieces"]["calls"]["data"]["events"].keys() == calls["events"].keys()
    assert [p.name for p in written] == ["benchmarks.md", "benchmarks.json"]


def test_combine_takes_a_piece_that_failed_in_one_run_from_the_other(tmp_path: Path) -> None:
    meta = {
        "started": "s",
        "total_seconds": 60.0,
        "quick": False,
        "python": "3.11",
        "machine": "x",
        "cpus": 2,
        "load_average_end": 1.0,
    }
    policy = {
        "instances": 10,
        "repeat": 1,
        "snapshot_bytes": 10,
        "aws_budget_ms": 2000,
        "cases": {
            "worker group": {
                "input_bytes": 2000,
                "parse_ms": 1.0,
                "decide_ms": 2.0,
                "ratio": 2.0,
                "allowed": 7,
            }
        },
    }
    first = {"meta": meta, "pieces": {"policy": {"status": "failed", "why": "killed"}}}
    second = {
        "meta": {**meta, "total_seconds": 120.0},
        "pieces": {"policy": {"status": "ok", "data": policy}},
    }
    paths = []
    for k, doc in enumerate((first, second)):
        paths.append(tmp_path / f"run{k}.json")
        paths[-1].write_text(json.dumps(doc))
    sys.path.insert(0, str(SCRIPTS))
    try:
        assert _script("bench").combine(paths, tmp_path / "docs", tmp_path / "out", plots=False) == 0
    finally:
        sys.path.remove(str(SCRIPTS))
    md = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "| worker group | 0.00 | 1.0 | 2.0 | 2.00x | 7 | yes |" in md and "killed" not in md
    assert "2.0 minutes" in md and "ran in 2 invocations" in md


def test_combine_keeps_the_runs_a_combined_input_lists(tmp_path: Path) -> None:
    """A report combined again (a new run of one piece in front of docs/benchmarks.json) keeps the runs the
    old report listed, minus those whose pieces now come from the new run."""
    meta = {"quick": False, "python": "3.11", "machine": "x", "cpus": 2, "load_average_end": 1.0}
    failed = {"status": "failed", "why": "not run"}
    combined = {
        "meta": {
            **meta,
            "started": "old",
            "total_seconds": 300.0,
            "runs": [
                {"started": "a", "total_seconds": 100.0, "pieces": ["calls", "policy"]},
                {"started": "b", "total_seconds": 200.0, "pieces": ["pool"]},
            ],
        },
        "pieces": {"calls": failed, "policy": failed, "pool": failed},
    }
    new = {"meta": {**meta, "started": "new", "total_seconds": 50.0}, "pieces": {"pool": failed}}
    paths = [tmp_path / "new.json", tmp_path / "old.json"]
    paths[0].write_text(json.dumps(new))
    paths[1].write_text(json.dumps(combined))
    sys.path.insert(0, str(SCRIPTS))
    try:
        assert _script("bench").combine(paths, tmp_path / "docs", tmp_path / "out", plots=False) == 0
    finally:
        sys.path.remove(str(SCRIPTS))
    runs = json.loads((tmp_path / "docs" / "benchmarks.json").read_text())["meta"]["runs"]
    assert runs == [
        {"started": "new", "total_seconds": 50.0, "pieces": ["pool"]},
        {"started": "a", "total_seconds": 100.0, "pieces": ["calls", "policy"]},
    ]
