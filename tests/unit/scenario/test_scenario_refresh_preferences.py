"""The scenario step ``instance_refresh`` takes StartInstanceRefresh's ``preferences`` (docs/scenarios.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autojoin.errors import BadInput
from autojoin.scenario.model import parse_scenario


def test_instance_refresh_takes_preferences(tmp_path: Path) -> None:
    prefs = {
        "ScaleInProtectedInstances": "Refresh",
        "SkipMatching": True,
        "MinHealthyPercentage": 50,
        "CheckpointPercentages": [50, 100],
        "CheckpointDelay": 600,
    }
    loaded = parse_scenario(
        {"steps": [{"action": "instance_refresh", "group": "workers", "preferences": prefs}]},
        tmp_path / "s.yaml",
    )
    step = loaded.steps[0].step
    assert step.preferences is not None and step.preferences.given() == prefs


REFRESH = {"action": "instance_refresh", "group": "workers"}


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({**REFRESH, "preferences": {"ScaleInProtectedInstances": "Soon"}}, "ScaleInProtectedInstances"),
        ({**REFRESH, "preferences": {"MinHealthy": 50}}, "MinHealthy"),
        ({**REFRESH, "preferences": {"CheckpointPercentages": [80, 20]}}, "increasing"),
        ({"action": "wait", "seconds": 1, "preferences": {}}, "does not take preferences"),
    ],
)
def test_bad_preferences_are_bad_input(tmp_path: Path, step: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_scenario({"steps": [step]}, tmp_path / "s.yaml")
