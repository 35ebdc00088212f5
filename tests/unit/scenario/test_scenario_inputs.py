"""Input shape recognition for replay: every shipped event, and what is not an input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autojoin.errors import BadInput
from autojoin.scenario.inputs import Shape, classify, read_event

REPO = Path(__file__).resolve().parents[3]
EVENTS = sorted((REPO / "events").glob("*.json"))

EXPECTED_SHAPE = {
    "autoscaling": Shape.EVENTBRIDGE,
    "scheduled": Shape.EVENTBRIDGE,
    "termination": Shape.TERMINATION_POLICY,
    "secretsmanager": Shape.ROTATION,
}


def test_the_brief_s_event_set_is_shipped() -> None:
    names = {p.stem for p in EVENTS}
    for name in [
        "autoscaling_launch_manager",
        "autoscaling_launch_worker",
        "autoscaling_launch_worker_warmpool",
        "autoscaling_launch_from_warmpool",
        "autoscaling_terminate_manager",
        "autoscaling_terminate_worker",
        "autoscaling_terminate_to_warmpool",
        "autoscaling_test_notification",
        "autoscaling_launch_successful",
        "autoscaling_launch_unsuccessful",
        "autoscaling_terminate_successful",
        "autoscaling_terminate_unsuccessful",
        "scheduled_reconcile",
        "termination_policy_scale_in",
        "termination_policy_instance_refresh",
        "termination_policy_max_instance_lifetime",
        "termination_policy_rebalance",
        "secretsmanager_rotation_create_secret",
        "secretsmanager_rotation_set_secret",
        "secretsmanager_rotation_test_secret",
        "secretsmanager_rotation_finish_secret",
        "autoscaling_launch_unknown_group",
    ]:
        assert name in names


@pytest.mark.parametrize("path", EVENTS, ids=lambda p: p.name)
def test_every_shipped_event_has_its_shape(path: Path) -> None:
    got = read_event(path)
    if path.stem == "autoscaling_test_notification":
        assert got.shape is Shape.NOTIFICATION
    else:
        assert got.shape is EXPECTED_SHAPE[path.stem.split("_")[0]]


def test_lifecycle_details_are_read() -> None:
    launch = read_event(REPO / "events/autoscaling_launch_manager.json")
    assert launch.lifecycle_transition == "launch"
    assert launch.group == "demo-manager"
    term = read_event(REPO / "events/autoscaling_terminate_to_warmpool.json")
    assert term.lifecycle_transition == "terminate"
    assert term.detail["Destination"] == "WarmPool"
    assert read_event(REPO / "events/scheduled_reconcile.json").lifecycle_transition is None


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([1, 2], "JSON object"),
        ({"hello": "world"}, "unknown event shape"),
        # an envelope without a version is routed (sam local generate-event prints one); without a source
        # it cannot be routed at all
        ({"detail-type": "x", "detail": {}}, "EventBridge event: source must be"),
        (
            {"Cause": "SCALE_DOWN", "AutoScalingGroupName": "g", "CapacityToTerminate": [], "Instances": []},
            "Cause",
        ),
        (
            {"Cause": "SCALE_IN", "AutoScalingGroupName": "g", "CapacityToTerminate": {}, "Instances": []},
            "list",
        ),
        ({"SecretId": "s", "ClientRequestToken": "t", "Step": "rotateEverything"}, "Step"),
        ({"SecretId": "s", "Step": "createSecret"}, "ClientRequestToken"),
        (
            {
                "Service": "AWS Auto Scaling",
                "AutoScalingGroupName": "g",
                "Event": "autoscaling:EC2_INSTANCE_LAUNCH",
            },
            "neither",
        ),
    ],
)
def test_unknown_or_malformed_shapes_are_bad_input(event: object, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        classify(event)


def test_read_event_file_errors(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        read_event(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(BadInput, match="not JSON"):
        read_event(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(BadInput, match="unknown event shape"):
        read_event(tmp_path / "y.json")
