"""`autojoin lab bench` (make bench's real-swarm piece) at its smallest size, only to keep it working: two
managers (one bare twin), no worker, and the guarded 5 -> 3. It runs in a lab of its own (its own prefix
and root: the bench takes its lab down first, which must not touch the session's lab). Times are reported
by the bench, never asserted here; what is asserted is that each phase happened and reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from autojoin.lab import Lab
from autojoin.lab.bench import run_bench

from .conftest import LAB_PREFIX

pytestmark = pytest.mark.swarm
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def test_lab_bench_smallest_size_reports_every_phase(lab: Lab) -> None:
    del lab  # the session's lab must be up (it installs docker.io); the bench uses its own
    prefix = f"{LAB_PREFIX}b"
    own = Lab(f"/tmp/autojoin-test-lab-{prefix}", prefix, stop_wait=5)
    report = run_bench(2, 0, ("a", "b"), lab=own, template=TEMPLATE, guard=True)
    summary = report.summary()
    assert set(summary) == {"handler", "autojoin", "bare"}, report.notes
    # both managers joined through on_launch (the first bootstraps); the reconciler may add a third
    assert summary["handler"]["n"] >= 2
    assert summary["autojoin"]["n"] == 1 and summary["bare"]["n"] == 1
    assert all(v["median_ms"] > 0 for v in summary.values())
    assert report.managers_total == 3 and report.managers_lost == 2
    assert report.quorum_loss_detect_s is not None, "autojoin's view never reported the quorum loss"
    assert report.leader_back_s is not None
    assert report.guard_5_to_3_s is not None, report.notes
    assert report.guard_5_to_3_layout == {"us-east-1a": 1, "us-east-1b": 1, "us-east-1c": 1}
    assert own.nodes() == []  # the bench took its lab down
