"""template.yaml as the template tests see it: raw (SAM), transformed offline (samtranslator), and a
fake deployment (physical ids) for the IAM evaluator."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse
from tests.template.iam_eval import PhysicalIds, resolve

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "autojoin-test"
ACCOUNT_ROOT = f"arn:aws:iam::{ACCOUNT}:root"

MANAGER_ROLE_ID = "AROAMANAGER"
WORKER_ROLE_ID = "AROAWORKER"
MANAGER_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:autojoin-test-manager-AbCdEf"
WORKER_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:autojoin-test-worker-GhIjKl"
OTHER_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:someone-elses-secret-MnOpQr"
STATE_TABLE = "autojoin-test-StateTable-1A2B3C"
HANDOFF_TABLE = "autojoin-test-HandoffTable-4D5E6F"
STATE_TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STATE_TABLE}"
HANDOFF_TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{HANDOFF_TABLE}"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
MANAGER_GROUP = f"{STACK}-manager"
WORKER_GROUP = f"{STACK}-worker"
FAILURE_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:autojoin-test-FailureQueue-7G8H9I"


def group_arn(name: str) -> str:
    group_id = "0a1b2c3d-0000-1111-2222-333344445555"
    return f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:{group_id}:autoScalingGroupName/{name}"


def instance_arn(instance_id: str) -> str:
    return f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}"


LAMBDA_PREFIX = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
RUN_SHELL_DOCUMENT_ARN = f"arn:aws:ssm:{REGION}::document/AWS-RunShellScript"

PHYSICAL = PhysicalIds(
    refs={
        "ClusterName": "demo",
        "LogLevel": "INFO",
        "TokenRotationSchedule": "rate(30 days)",
        "ManagerTokenSecret": MANAGER_SECRET,
        "WorkerTokenSecret": WORKER_SECRET,
        "StateTable": STATE_TABLE,
        "HandoffTable": HANDOFF_TABLE,
        "ManagerGroup": MANAGER_GROUP,
        "WorkerGroup": WORKER_GROUP,
        "ManagerInstanceRole": "autojoin-test-ManagerInstanceRole-X",
        "WorkerInstanceRole": "autojoin-test-WorkerInstanceRole-Y",
        "FailureQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/autojoin-test-FailureQueue-7G8H9I",
        "OnLaunchFunction": "autojoin-test-OnLaunchFunction-Z",
        "RotateTokensFunction": "autojoin-test-RotateTokensFunction-W",
    },
    attrs={
        "StateTable.Arn": STATE_TABLE_ARN,
        "HandoffTable.Arn": HANDOFF_TABLE_ARN,
        "AutojoinKey.Arn": KEY_ARN,
        "ManagerInstanceRole.RoleId": MANAGER_ROLE_ID,
        "WorkerInstanceRole.RoleId": WORKER_ROLE_ID,
        "FailureQueue.Arn": FAILURE_QUEUE_ARN,
        "FailureQueue.QueueName": "autojoin-test-FailureQueue-7G8H9I",
        "OnLaunchFunctionLaunchLifecycle.Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/autojoin-test-launch",
        "OnLaunchFunction.Arn": f"{LAMBDA_PREFIX}autojoin-test-OnLaunchFunction-Z",
        "RotateTokensFunction.Arn": f"{LAMBDA_PREFIX}autojoin-test-RotateTokensFunction-W",
    },
    pseudo={
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": "aws",
        "AWS::StackName": STACK,
        "AWS::URLSuffix": "amazonaws.com",
    },
)

# AWS managed policies the roles attach, as documents (AWS publishes them; these copies hold the
# statements that matter here and are what the evaluator uses for the ManagedPolicyArns).
MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "ssm:DescribeAssociation",
                    "ssm:GetDeployablePatchSnapshotForInstance",
                    "ssm:GetDocument",
                    "ssm:DescribeDocument",
                    "ssm:GetManifest",
                    "ssm:GetParameter",
                    "ssm:GetParameters",
                    "ssm:ListAssociations",
                    "ssm:ListInstanceAssociations",
                    "ssm:PutInventory",
                    "ssm:PutComplianceItems",
                    "ssm:PutConfigurePackageResult",
                    "ssm:UpdateAssociationStatus",
                    "ssm:UpdateInstanceAssociationStatus",
                    "ssm:UpdateInstanceInformation",
                ],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": [
                    "ssmmessages:CreateControlChannel",
                    "ssmmessages:CreateDataChannel",
                    "ssmmessages:OpenControlChannel",
                    "ssmmessages:OpenDataChannel",
                ],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": [
                    "ec2messages:AcknowledgeMessage",
                    "ec2messages:DeleteMessage",
                    "ec2messages:FailMessage",
                    "ec2messages:GetEndpoint",
                    "ec2messages:GetMessages",
                    "ec2messages:SendReply",
                ],
                "Resource": "*",
            },
        ],
    },
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    },
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "xray:GetSamplingStatisticSummaries",
                ],
                "Resource": "*",
            }
        ],
    },
}


@cache
def _raw_text() -> str:
    return TEMPLATE.read_text()


def raw() -> dict[str, Any]:
    """template.yaml as written (short-form tags become their Fn:: forms)."""
    return copy.deepcopy(_raw())


@cache
def _raw() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml_parse(_raw_text())
    return parsed


def _packaged(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` does to local code paths: point them at S3 (the translator wants S3 URIs)."""
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = "s3://autojoin-artifacts/" + props[key].strip("/") + ".zip"
    return template


@cache
def _transformed() -> dict[str, Any]:
    translator = Translator({}, Parser(), boto_session=boto3.Session(region_name=REGION))
    # the managed-policy loader stub: the template names managed policies by ARN only
    out: dict[str, Any] = translator.translate(_packaged(raw()), {}, get_managed_policy_map=lambda: {})
    return out


def transformed() -> dict[str, Any]:
    """The template after the SAM transform, offline."""
    return copy.deepcopy(_transformed())


def resources() -> dict[str, Any]:
    res: dict[str, Any] = transformed()["Resources"]
    return res


def role_policies(role_logical_id: str) -> list[dict[str, Any]]:
    """Every policy document of a role (inline + managed), intrinsics resolved against PHYSICAL."""
    props = resources()[role_logical_id]["Properties"]
    docs = [resolve(p["PolicyDocument"], PHYSICAL) for p in props.get("Policies", [])]
    for arn in resolve(props.get("ManagedPolicyArns", []), PHYSICAL):
        if arn not in MANAGED_POLICIES:
            raise AssertionError(f"{role_logical_id} attaches {arn}: add its document to MANAGED_POLICIES")
        docs.append(MANAGED_POLICIES[arn])
    return docs


def inline_policies(role_logical_id: str) -> list[dict[str, Any]]:
    props = resources()[role_logical_id]["Properties"]
    return [resolve(p["PolicyDocument"], PHYSICAL) for p in props.get("Policies", [])]


def key_policy() -> dict[str, Any]:
    doc: dict[str, Any] = resolve(resources()["AutojoinKey"]["Properties"]["KeyPolicy"], PHYSICAL)
    return doc
