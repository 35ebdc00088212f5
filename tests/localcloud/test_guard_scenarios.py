"""The quorum guard's scenarios, looked at more closely than their expectations: the order of what was
done to each node (the shipped-scenario test runs every scenario for its expectations and invariants)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autojoin.adapters.sim.swarm import SimSwarm
from autojoin.cli.main import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_worker_scale_in_drains_each_worker_before_it_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[tuple[str, str]] = []
    drain, leave, demote = SimSwarm.drain, SimSwarm.leave, SimSwarm.demote

    def drain_spy(self: SimSwarm, node_id: str) -> None:
        done.append(("drain", self.instance_of(node_id) or node_id))
        drain(self, node_id)

    def leave_spy(self: SimSwarm, instance_id: str, *, force: bool = False) -> None:
        done.append(("leave", instance_id))
        leave(self, instance_id, force=force)

    def demote_spy(self: SimSwarm, node_id: str) -> None:
        done.append(("demote", self.instance_of(node_id) or node_id))
        demote(self, node_id)

    monkeypatch.setattr(SimSwarm, "drain", drain_spy)
    monkeypatch.setattr(SimSwarm, "leave", leave_spy)
    monkeypatch.setattr(SimSwarm, "demote", demote_spy)
    result = runner.invoke(
        app,
        [
            "simulate",
            str(REPO / "scenarios/worker-scale-in-drains.yaml"),
            "--template",
            str(REPO / "template.yaml"),
        ],
    )
    assert result.exit_code == 0, result.stdout[-3000:]
    left = [iid for what, iid in done if what == "leave"]
    assert len(left) == 2
    for iid in left:
        assert done.index(("drain", iid)) < done.index(("leave", iid))
    assert not [d for d in done if d[0] == "demote"]  # managers untouched


def test_instance_refresh_replaces_every_manager_and_ends_2_2_1() -> None:
    result = runner.invoke(
        app,
        [
            "simulate",
            str(REPO / "scenarios/manager-instance-refresh.yaml"),
            "--template",
            str(REPO / "template.yaml"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stdout[-3000:]
    doc = json.loads(result.stdout)
    assert doc["passed"] and doc["violations"] == []

    def managers(state: dict[str, Any]) -> set[str]:
        return {m["instance_id"] for m in state["members"] if m["role"] == "manager"}

    before, after = managers(doc["initial"]), managers(doc["final"])
    assert len(before) == len(after) == 5
    assert not before & after  # every one of them was replaced
    assert sorted(doc["final"]["layout"].values(), reverse=True) == [2, 2, 1]
    # no step ever left the cluster surviving fewer than one AZ loss (invocations are checked by the
    # az-tolerance invariant; the step states here)
    assert all(s["state"]["tolerates_zone_failures_now"] >= 1 for s in doc["steps"])
