"""The scenario format: times, actions and their fields, selectors, validation against the cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autojoin.domain.model import Role
from autojoin.errors import BadInput
from autojoin.scenario.model import Selector, load_scenario, parse_at, parse_scenario, parse_selector

REPO = Path(__file__).resolve().parents[3]


def _load(tmp_path: Path, data: object) -> object:
    return parse_scenario(data, tmp_path / "s.yaml")


def test_times_absolute_relative_and_waits(tmp_path: Path) -> None:
    loaded = parse_scenario(
        {
            "steps": [
                {"at": 10, "action": "wait", "seconds": 5},
                {"at": "+2m", "action": "az_outage", "zone": "us-east-1a"},
                {"action": "az_recover", "zone": "us-east-1a"},
                {"at": "1h", "action": "scale", "group": "worker", "desired": 4},
            ]
        },
        tmp_path / "s.yaml",
    )
    assert [t.at for t in loaded.steps] == [10.0, 135.0, 135.0, 3600.0]
    assert loaded.steps[3].group_role is Role.WORKER
    assert loaded.name == "s"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, (False, 0.0)),
        (90, (False, 90.0)),
        ("+90s", (True, 90.0)),
        ("+2m", (True, 120.0)),
        ("1.5h", (False, 5400.0)),
    ],
)
def test_parse_at(value: object, expected: tuple[bool, float]) -> None:
    assert parse_at(value) == expected


@pytest.mark.parametrize("value", [-1, "soon", "+-3s", True])
def test_parse_at_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="at"):
        parse_at(value)


@pytest.mark.parametrize(
    ("text", "selector"),
    [
        ("manager in us-east-1a", Selector(role=Role.MANAGER, zone="us-east-1a")),
        ("Worker #3", Selector(role=Role.WORKER, index=3)),
        ("managers in us-east-1b #2", Selector(role=Role.MANAGER, zone="us-east-1b", index=2)),
        ("leader", Selector(leader=True)),
        ("i-00000000000000101", Selector(instance_id="i-00000000000000101")),
    ],
)
def test_selectors(text: str, selector: Selector) -> None:
    assert parse_selector(text) == selector


def test_group_names_resolve_to_roles(tmp_path: Path) -> None:
    loaded = parse_scenario(
        {
            "steps": [
                {"action": "scale", "group": "demo-manager", "desired": 5},
                {"action": "instance_refresh", "group": "workers"},
            ]
        },
        tmp_path / "s.yaml",
    )
    assert [t.group_role for t in loaded.steps] == [Role.MANAGER, Role.WORKER]


def test_deliver_reads_the_event_beside_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "e.json").write_text(json.dumps({"Event": "autoscaling:TEST_NOTIFICATION"}))
    loaded = parse_scenario(
        {"steps": [{"action": "deliver", "event": "e.json", "duplicate": True, "delay": 30}]},
        tmp_path / "s.yaml",
    )
    step = loaded.steps[0]
    assert step.event == {"Event": "autoscaling:TEST_NOTIFICATION"}
    assert step.step.describe() == "deliver e.json (twice, 30s late)"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"steps": [{"action": "explode"}]}, "steps.0.action"),
        ({"steps": [{"action": "az_outage", "zone": "us-west-2a"}]}, "zone us-west-2a does not exist"),
        ({"steps": [{"action": "scale", "group": "db", "desired": 2}]}, "group 'db' does not exist"),
        ({"steps": [{"action": "scale", "group": "worker"}]}, "needs desired"),
        ({"steps": [{"action": "wait", "seconds": 1, "zone": "us-east-1a"}]}, "does not take zone"),
        ({"steps": [{"action": "crash", "target": "the big one"}]}, "cannot read the instance selector"),
        (
            {"steps": [{"action": "crash", "target": "manager in us-west-2b"}]},
            "zone us-west-2b does not exist",
        ),
        (
            {
                "steps": [
                    {"at": 60, "action": "wait", "seconds": 0},
                    {"at": 30, "action": "wait", "seconds": 0},
                ]
            },
            "before",
        ),
        ({"steps": [{"action": "deliver", "event": "missing.json"}]}, "not found"),
        (
            {"steps": [{"action": "wait", "seconds": 0, "expect": {"layout": {"us-west-2a": 1}}}]},
            "does not exist",
        ),
        ({"steps": [{"action": "wait", "seconds": 0, "expect": {"quorum": True}}]}, "unknown field"),
        ({"cluster": {"zones": "nope"}, "steps": []}, "cluster"),
        ({"steps": [{"action": "rotate_tokens", "role": "admin"}]}, "role"),
        ("just text", "expected a mapping"),
    ],
)
def test_bad_scenarios_are_bad_input(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        _load(tmp_path, data)


def test_unparsable_yaml(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("steps: [\n  - at: 1\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_scenario(path)


@pytest.mark.parametrize("path", sorted((REPO / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_scenario_loads(path: Path) -> None:
    loaded = load_scenario(path)
    assert loaded.steps, f"{path.name} has no steps"
    assert any(t.step.expect for t in loaded.steps) or loaded.scenario.expect, f"{path.name} expects nothing"
