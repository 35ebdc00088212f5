"""scripts/bench_resilience.py stays working: a tiny run of both arms (its JSON's shape, values in range),
and plain Auto Scaling against autojoin on one fixed small timeline — an abrupt manager terminate leaves a
Down voter behind in the plain arm and none with autojoin. Asserts no figure of the benchmark itself."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from autojoin.scenario.resilience import ARMS, SAMPLE_FIELDS, run_arm

REPO = Path(__file__).resolve().parents[2]
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_resilience", REPO / "scripts" / "bench_resilience.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_tiny_run_writes_both_arms_figures_in_range(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code = _script().main(
        [
            "--timelines",
            "1",
            "--first",
            "3",
            "--jobs",
            "1",
            "--settle",
            "300",
            "--out",
            str(out),
            "--no-plots",
        ]
    )
    assert code == 0
    doc = json.loads((out / "resilience.json").read_text())
    meta = doc["meta"]
    assert meta["timelines"] == 1 and meta["counted"] + meta["excluded"] == 1
    assert meta["timelines_per_second"] > 0
    assert set(doc["table"]) == set(ARMS)
    for arm in ARMS:
        t: dict[str, Any] = doc["table"][arm]
        assert t["timelines"] == meta["counted"] == 1
        for share in ("time_with_quorum", "time_surviving_any_one_az_loss", "time_off_optimal_layout"):
            assert 0.0 <= t[share] <= 1.0, (arm, share, t[share])
        for count in ("quorum_losses_by_scaling", "down_voters_mean", "down_voters_at_end_mean", "gap_mean"):
            assert t[count] >= 0, (arm, count)
        series = doc["series"][arm]
        assert len(series["quorum"]) == len(doc["series"]["minutes"]) > 0
        assert all(0.0 <= v <= 1.0 for v in series["quorum"] + series["survives_az"])
    (timeline,) = doc["timelines"]
    assert timeline["name"] == "chaos-1-3" and timeline["steps"]
    fragment = (out / "resilience.md").read_text()
    assert "| quorum losses caused by scaling actions |" in fragment
    assert "--timelines 1 --seed 1 --jobs 1 --first 3 --settle 300" in fragment
    assert "--timelines 2000" in fragment
    again = tmp_path / "again"
    assert _script().main(["--render", str(out / "resilience.json"), "--out", str(again), "--no-plots"]) == 0
    assert (again / "resilience.md").read_text() == fragment


def test_plain_auto_scaling_leaves_the_down_voter_of_an_abrupt_manager_terminate_and_autojoin_does_not() -> (
    None
):
    doc = {
        "name": "abrupt-manager-terminate",
        "seed": 7,
        "settle": 300,
        "cluster": {"cluster": "demo", "zones": ZONES, "managers": 3, "workers": 0},
        "steps": [{"at": "+1m", "action": "terminate", "target": "manager #1", "decrement": False}],
    }
    plain = run_arm(doc, removal=False)
    autojoin = run_arm(doc, removal=True)
    for run in (plain, autojoin):
        assert run.error is None and not run.skipped and not run.losses, run
        assert [s.at for s in run.samples] == [60.0 * i for i in range(len(run.samples))]
        assert run.samples[0].down_voters == 0 and run.samples[-1].quorum
        assert run.samples[-1].healthy == 3  # the group replaced the terminated manager in both arms
        assert len(run.to_json()["samples"][0]) == len(SAMPLE_FIELDS)
    assert plain.samples[-1].down_voters == 1 and plain.samples[-1].voters == 4
    assert autojoin.samples[-1].down_voters == 0 and autojoin.samples[-1].voters == 3
