"""The lifecycle action parser takes events with and without Origin/Destination.

"Amazon EC2 Auto Scaling event reference" (Lifecycle action events) shows Origin/Destination on every
lifecycle action event today; older events, flat SQS/SNS hook bodies and hand-written test events lack
them. Both shapes parse to the same action; only a warm-pool destination marks it as such."""

from __future__ import annotations

from typing import Any

import pytest

from autojoin.domain.model import LifecycleKind
from autojoin.events import lifecycle_action


def _event(transition: str, **extra: str) -> dict[str, Any]:
    launch = transition.endswith("LAUNCHING")
    return {
        "version": "0",
        "id": "12345678-1234-1234-1234-123456789012",
        "detail-type": f"EC2 Instance-{'launch' if launch else 'terminate'} Lifecycle Action",
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:autoScalingGroupName/g"],
        "detail": {
            "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
            "AutoScalingGroupName": "g",
            "LifecycleHookName": "h",
            "EC2InstanceId": "i-1234567890abcdef0",
            "LifecycleTransition": transition,
            **extra,
        },
    }


@pytest.mark.parametrize(
    ("transition", "origin", "destination"),
    [
        ("autoscaling:EC2_INSTANCE_LAUNCHING", "EC2", "AutoScalingGroup"),
        ("autoscaling:EC2_INSTANCE_TERMINATING", "AutoScalingGroup", "EC2"),
    ],
)
def test_with_and_without_origin_and_destination(transition: str, origin: str, destination: str) -> None:
    bare = lifecycle_action(_event(transition))
    today = lifecycle_action(_event(transition, Origin=origin, Destination=destination))
    assert (bare.origin, bare.destination) == (None, None)
    assert (today.origin, today.destination) == (origin, destination)
    assert today.model_copy(update={"origin": None, "destination": None}) == bare
    assert not today.into_warm_pool and not bare.into_warm_pool
    kind = LifecycleKind.LAUNCHING if transition.endswith("LAUNCHING") else LifecycleKind.TERMINATING
    assert today.kind is kind


def test_a_warm_pool_destination_is_seen_in_both_the_eventbridge_and_the_flat_shape() -> None:
    event = _event("autoscaling:EC2_INSTANCE_LAUNCHING", Origin="EC2", Destination="WarmPool")
    assert lifecycle_action(event).into_warm_pool
    flat = dict(event["detail"])
    assert lifecycle_action(flat).into_warm_pool
    del flat["Origin"], flat["Destination"]
    assert not lifecycle_action(flat).into_warm_pool
