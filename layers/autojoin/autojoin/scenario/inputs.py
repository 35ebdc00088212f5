"""Recognise what kind of input an event file holds, the way AWS would route it.

Every input autojoin accepts has one of four shapes:

- an EventBridge event (``detail-type``/``source``, usually ``version``/``id``/``detail``…): lifecycle
  actions, launch/terminate results, the scheduled reconcile event, and any other service's envelope —
  delivered through the template's rules (one no rule matches is ``ignored``, not bad input);
- a custom termination policy input (``AutoScalingGroupName``, ``CapacityToTerminate``, ``Instances``,
  ``Cause``) — Auto Scaling invokes the group's termination policy function synchronously;
- a Secrets Manager rotation step (``SecretId``, ``ClientRequestToken``, ``Step``);
- the flat body of a hook notifying SQS/SNS, such as ``autoscaling:TEST_NOTIFICATION``.

Anything else is BadInput (the message names the problem, never echoes the event), and so is a file
that is not UTF-8 JSON, starts with a byte order mark or nests deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from autojoin.errors import BadInput

CAUSES = ("SCALE_IN", "INSTANCE_REFRESH", "MAX_INSTANCE_LIFETIME", "REBALANCE")
ROTATION_STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
LAUNCH_ACTION = "EC2 Instance-launch Lifecycle Action"
TERMINATE_ACTION = "EC2 Instance-terminate Lifecycle Action"
SCHEDULED = "Scheduled Event"
# AWS events nest a handful of levels; anything this deep is not an event, and walking it (rewriting ids,
# matching patterns, rendering) would exhaust Python's recursion limit
MAX_DEPTH = 64


class Shape(StrEnum):
    EVENTBRIDGE = "eventbridge"
    TERMINATION_POLICY = "termination-policy"
    ROTATION = "secrets-manager-rotation"
    NOTIFICATION = "lifecycle-notification"  # flat SQS/SNS body (TEST_NOTIFICATION or an action)


@dataclass(frozen=True)
class Input:
    shape: Shape
    event: dict[str, Any]

    @property
    def detail_type(self) -> str:
        return str(self.event.get("detail-type", "")) if self.shape is Shape.EVENTBRIDGE else ""

    @property
    def detail(self) -> dict[str, Any]:
        d = self.event.get("detail")
        return d if isinstance(d, dict) else {}

    @property
    def lifecycle_transition(self) -> str | None:
        """``launch`` / ``terminate`` for a lifecycle action event, else None."""
        if self.detail_type == LAUNCH_ACTION:
            return "launch"
        if self.detail_type == TERMINATE_ACTION:
            return "terminate"
        return None

    @property
    def group(self) -> str | None:
        if self.shape is Shape.EVENTBRIDGE:
            g = self.detail.get("AutoScalingGroupName")
        elif self.shape is Shape.ROTATION:
            g = None
        else:
            g = self.event.get("AutoScalingGroupName")
        return g if isinstance(g, str) and g else None

    def describe(self) -> str:
        if self.shape is Shape.EVENTBRIDGE:
            return f"EventBridge event {self.event.get('source')} / {self.detail_type}"
        if self.shape is Shape.TERMINATION_POLICY:
            return f"termination policy input (Cause {self.event['Cause']})"
        if self.shape is Shape.ROTATION:
            return f"Secrets Manager rotation step {self.event['Step']}"
        return f"Auto Scaling notification {self.event.get('Event') or self.event.get('LifecycleTransition')}"


def _str(event: Mapping[str, Any], key: str, what: str) -> str:
    v = event.get(key)
    if not isinstance(v, str) or not v:
        raise BadInput(f"{what}: {key} must be a non-empty string")
    return v


def classify(event: object) -> Input:
    """The shape of ``event``, checked enough that routing it cannot fail on structure."""
    if not isinstance(event, dict):
        raise BadInput(f"the event must be a JSON object, got {type(event).__name__}")
    if "detail-type" in event or "detail" in event:
        # any EventBridge envelope: the template's rules decide whether it reaches a function. Only what
        # routing reads must be there; the rest (version, a string detail from EventBridge Scheduler, extra
        # keys such as replay-name) is the handler's to judge, as in AWS.
        for key in ("source", "detail-type"):
            _str(event, key, "EventBridge event")
        if "resources" in event and not isinstance(event["resources"], list):
            raise BadInput("EventBridge event: resources must be a list")
        return Input(Shape.EVENTBRIDGE, event)
    if "CapacityToTerminate" in event or "Cause" in event:
        what = "termination policy input"
        _str(event, "AutoScalingGroupName", what)
        cause = _str(event, "Cause", what)
        if cause not in CAUSES:
            raise BadInput(f"{what}: Cause {cause!r} is not one of {', '.join(CAUSES)}")
        for key in ("CapacityToTerminate", "Instances"):
            items = event.get(key)
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise BadInput(f"{what}: {key} must be a list of objects")
        for inst in event["Instances"]:
            _str(inst, "InstanceId", f"{what}: Instances[]")
            _str(inst, "AvailabilityZone", f"{what}: Instances[]")
        return Input(Shape.TERMINATION_POLICY, event)
    if "SecretId" in event or "Step" in event:
        what = "rotation step"
        for key in ("SecretId", "ClientRequestToken", "Step"):
            _str(event, key, what)
        if event["Step"] not in ROTATION_STEPS:
            raise BadInput(f"{what}: Step {event['Step']!r} is not one of {', '.join(ROTATION_STEPS)}")
        return Input(Shape.ROTATION, event)
    if event.get("Service") == "AWS Auto Scaling" or "LifecycleTransition" in event or "Event" in event:
        what = "Auto Scaling notification"
        _str(event, "AutoScalingGroupName", what)
        if "LifecycleTransition" not in event and event.get("Event") != "autoscaling:TEST_NOTIFICATION":
            raise BadInput(f"{what}: neither a TEST_NOTIFICATION nor a lifecycle action")
        return Input(Shape.NOTIFICATION, event)
    raise BadInput(
        "unknown event shape: not an EventBridge event, a termination policy input, a Secrets Manager "
        "rotation step or an Auto Scaling notification"
    )


def read_event(path: Path) -> Input:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({type(exc).__name__})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        raise BadInput(f"{path}: starts with a UTF-8 byte order mark (BOM): save it as UTF-8 without BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 (byte {exc.start})") from None
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not JSON (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise BadInput(f"{path}: JSON nested too deeply") from None
    if _depth_over(event, MAX_DEPTH):
        raise BadInput(f"{path}: JSON nested too deeply (more than {MAX_DEPTH} levels)")
    try:
        return classify(event)
    except BadInput as exc:
        raise BadInput(f"{path}: {exc}") from None


def _depth_over(value: Any, limit: int) -> bool:
    """True when ``value`` nests containers deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children)
    return False
