"""The embedded local cloud: moto plus EC2 Auto Scaling lifecycle semantics, event routing from
template.yaml and simulated time. Contract: docs/localcloud-api.md."""

from autojoin.localcloud.asg import CAUSES, LAUNCHING, TERMINATING, GroupConfig, HookSpec
from autojoin.localcloud.cloud import Delivery, LambdaContext, LocalCloud, LocalCloudError
from autojoin.localcloud.provision import FunctionSpec, RuleSpec, Stack
from autojoin.localcloud.records import AwsCall, Invocation, LifecycleRecord, PolicyCall, redact
from autojoin.localcloud.template import TemplateError

__all__ = [
    "CAUSES",
    "LAUNCHING",
    "TERMINATING",
    "AwsCall",
    "Delivery",
    "FunctionSpec",
    "GroupConfig",
    "HookSpec",
    "Invocation",
    "LambdaContext",
    "LifecycleRecord",
    "LocalCloud",
    "LocalCloudError",
    "PolicyCall",
    "RuleSpec",
    "Stack",
    "TemplateError",
    "redact",
]
