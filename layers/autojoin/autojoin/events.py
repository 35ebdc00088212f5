"""Every source of lifecycle actions normalised into one domain type (as aws-node-termination-handler does).

Accepted shapes: the EventBridge lifecycle action event (detail-type "EC2 Instance-launch/terminate
Lifecycle Action"), and the flat body a hook sends to SQS/SNS — including the
``autoscaling:TEST_NOTIFICATION`` sent when such a hook is created.
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field

from autojoin.domain.model import LifecycleAction, LifecycleKind
from autojoin.errors import BadInput

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
TEST_NOTIFICATION = "autoscaling:TEST_NOTIFICATION"
_KIND = {LAUNCHING: LifecycleKind.LAUNCHING, TERMINATING: LifecycleKind.TERMINATING}


class LifecycleDetail(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    lifecycle_action_token: str = Field(alias="LifecycleActionToken", min_length=1)
    group: str = Field(alias="AutoScalingGroupName", min_length=1)
    hook: str = Field(alias="LifecycleHookName", min_length=1)
    instance_id: str = Field(alias="EC2InstanceId", pattern=r"^i-[0-9a-zA-Z]+$")
    transition: Literal["autoscaling:EC2_INSTANCE_LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATING"] = Field(
        alias="LifecycleTransition"
    )
    metadata: str | None = Field(default=None, alias="NotificationMetadata")
    origin: str | None = Field(default=None, alias="Origin")
    destination: str | None = Field(default=None, alias="Destination")


class LifecycleActionEvent(EventBridgeModel):
    detail: LifecycleDetail


class TestNotification(BaseModel):
    model_config = ConfigDict(extra="allow")

    Event: Literal["autoscaling:TEST_NOTIFICATION"]
    AutoScalingGroupName: str


def _from_detail(d: LifecycleDetail, event_id: str) -> LifecycleAction:
    return LifecycleAction(
        kind=_KIND[d.transition],
        group=d.group,
        instance_id=d.instance_id,
        hook=d.hook,
        token=d.lifecycle_action_token,
        origin=d.origin,
        destination=d.destination,
        event_id=event_id,
        metadata=d.metadata,
    )


def lifecycle_action(event: Any) -> LifecycleAction:
    """Normalise ``event`` or raise BadInput naming what was wrong (never echoing the event)."""
    if not isinstance(event, dict):
        raise BadInput(f"event must be a JSON object, got {type(event).__name__}")
    if event.get("Event") == TEST_NOTIFICATION:
        try:
            test = parse(event=event, model=TestNotification)
        except ValidationError:
            raise BadInput("TEST_NOTIFICATION without AutoScalingGroupName") from None
        return LifecycleAction(kind=LifecycleKind.TEST, group=test.AutoScalingGroupName)
    if "detail" in event:
        try:
            parsed = parse(event=event, model=LifecycleActionEvent)
        except ValidationError as exc:
            raise BadInput(f"not a lifecycle action event: {_fields(exc)}") from None
        return _from_detail(parsed.detail, parsed.id)
    if "LifecycleTransition" in event:  # flat SQS/SNS body
        try:
            flat = LifecycleDetail.model_validate(event)
        except ValidationError as exc:
            raise BadInput(f"not a lifecycle action message: {_fields(exc)}") from None
        return _from_detail(flat, str(event.get("RequestId", "")))
    raise BadInput("unrecognised event shape (expected an Auto Scaling lifecycle action)")


def _fields(exc: ValidationError) -> str:
    return ", ".join(".".join(str(p) for p in e["loc"]) + f" ({e['type']})" for e in exc.errors())
