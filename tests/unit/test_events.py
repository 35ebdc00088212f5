"""events.lifecycle_action: every accepted shape (EventBridge, the flat SQS/SNS body, TEST_NOTIFICATION) and
the field rules; on_launch's answer to input it rejects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest

from autojoin.bootstrap import Deps
from autojoin.domain.model import LifecycleKind
from autojoin.entrypoints import on_launch
from autojoin.errors import BadInput
from autojoin.events import lifecycle_action
from autojoin.observability import metrics

IID = "i-0123456789abcdef0"


def _flat(**override: Any) -> dict[str, Any]:
    body = {
        "Origin": "EC2",
        "LifecycleHookName": "autojoin-launch",
        "Destination": "AutoScalingGroup",
        "AccountId": "123456789012",
        "RequestId": "req-42",
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "AutoScalingGroupName": "demo-worker",
        "Service": "AWS Auto Scaling",
        "Time": "2026-01-01T00:00:00.000Z",
        "EC2InstanceId": IID,
        "LifecycleActionToken": "71514b9d-6a40-4b26-8523-05e7ee35fa40",
        "NotificationMetadata": "meta",
    }
    body.update(override)
    return {k: v for k, v in body.items() if v is not None}


def _bridge(**detail: Any) -> dict[str, Any]:
    flat = _flat(**detail)
    flat.pop("RequestId", None)
    return {
        "version": "0",
        "id": "ev-1",
        "detail-type": "EC2 Instance-launch Lifecycle Action",
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": flat,
    }


def test_the_flat_sqs_sns_body_is_a_lifecycle_action() -> None:
    action = lifecycle_action(_flat(LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING"))
    assert action.kind is LifecycleKind.TERMINATING
    assert (action.group, action.instance_id, action.hook) == ("demo-worker", IID, "autojoin-launch")
    assert action.token == "71514b9d-6a40-4b26-8523-05e7ee35fa40"
    assert (action.origin, action.destination, action.metadata) == ("EC2", "AutoScalingGroup", "meta")
    assert action.event_id == "req-42"  # the message's RequestId stands in for the event id


def test_a_flat_body_without_request_id_has_an_empty_event_id() -> None:
    assert lifecycle_action(_flat(RequestId=None)).event_id == ""


def test_a_broken_flat_body_names_the_bad_field_without_echoing_it() -> None:
    with pytest.raises(BadInput) as caught:
        lifecycle_action(_flat(EC2InstanceId="not-an-instance"))
    assert str(caught.value) == "not a lifecycle action message: EC2InstanceId (string_pattern_mismatch)"


def test_every_bad_field_is_named_by_its_full_path() -> None:
    with pytest.raises(BadInput) as caught:
        lifecycle_action(_bridge(LifecycleActionToken="", LifecycleHookName=""))
    assert str(caught.value) == (
        "not a lifecycle action event: "
        "detail.LifecycleActionToken (string_too_short), detail.LifecycleHookName (string_too_short)"
    )


def test_the_eventbridge_event_carries_its_id_and_kind() -> None:
    action = lifecycle_action(_bridge())
    assert (action.kind, action.event_id, action.group) == (LifecycleKind.LAUNCHING, "ev-1", "demo-worker")


@pytest.mark.parametrize("field", ["LifecycleActionToken", "AutoScalingGroupName", "LifecycleHookName"])
@pytest.mark.parametrize("shape", ["flat", "bridge"])
def test_an_empty_token_group_or_hook_is_rejected_and_one_character_is_enough(field: str, shape: str) -> None:
    make = _flat if shape == "flat" else _bridge
    with pytest.raises(BadInput, match=f"{field} \\(string_too_short\\)"):
        lifecycle_action(make(**{field: ""}))
    one = lifecycle_action(make(**{field: "x"}))
    assert {"LifecycleActionToken": one.token, "AutoScalingGroupName": one.group}.get(field, one.hook) == "x"


def test_a_test_notification_needs_its_group() -> None:
    test = lifecycle_action({"Event": "autoscaling:TEST_NOTIFICATION", "AutoScalingGroupName": "g"})
    assert (test.kind, test.group) == (LifecycleKind.TEST, "g")
    with pytest.raises(BadInput, match=r"^TEST_NOTIFICATION without AutoScalingGroupName$"):
        lifecycle_action({"Event": "autoscaling:TEST_NOTIFICATION"})


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ([], "event must be a JSON object, got list"),
        ({"hello": 1}, "unrecognised event shape (expected an Auto Scaling lifecycle action)"),
        ({"detail": {}}, "not a lifecycle action event: "),
    ],
)
def test_unusable_events_are_named(event: Any, reason: str) -> None:
    with pytest.raises(BadInput) as caught:
        lifecycle_action(event)
    assert str(caught.value).startswith(reason)


@pytest.fixture
def no_metrics_left() -> Iterator[None]:
    yield
    metrics.clear_metrics()


@pytest.mark.usefixtures("no_metrics_left")
def test_on_launch_answers_rejected_input_with_the_reason() -> None:
    # bad input never reaches the dependencies: they are not needed to reject it
    answer = on_launch(_flat(AutoScalingGroupName=""), None, deps=cast(Deps, None))
    assert answer == {
        "outcome": "rejected",
        "reason": "not a lifecycle action message: AutoScalingGroupName (string_too_short)",
    }
