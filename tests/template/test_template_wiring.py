"""template.yaml transformed offline by samtranslator: function <-> rule <-> target <-> permission <->
env, the secrets and their rotation, groups, hooks, launch templates - against docs/wiring.md."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tests.template import template_model as tm

from autojoin.services.launch import LaunchConfig
from autojoin.services.rotation import LEASE_TTL
from autojoin.settings import Settings

FUNCTIONS = {
    "OnLaunchFunction": "on_launch",
    "RotateTokensFunction": "rotate_tokens",
    "OnTerminateFunction": "on_terminate",
    "TerminationPolicyFunction": "termination_policy",
    "ReconcileFunction": "reconcile",
}
LAUNCH_RULE = "OnLaunchFunctionLaunchLifecycle"
TERMINATE_RULE = "OnTerminateFunctionTerminateLifecycle"
GUARD_SCHEDULE = "OnTerminateFunctionGuardSchedule"


def res(logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = tm.resources()[logical_id]
    return found


def props(logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = res(logical_id)["Properties"]
    return found


def getatt(logical_id: str, attr: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, attr]}


def layer_id() -> str:
    (layer,) = [k for k, v in tm.resources().items() if v["Type"] == "AWS::Lambda::LayerVersion"]
    return layer


# --- docs/wiring.md -----------------------------------------------------------------------------


def wiring_env() -> dict[str, dict[str, Any]]:
    """function folder -> {env var: expected CloudFormation value}, parsed from docs/wiring.md."""
    text = (tm.ROOT / "docs" / "wiring.md").read_text()
    section = text.split("## Function environment", 1)[1].split("\n## ", 1)[0]
    params = set(tm.raw()["Parameters"])
    out: dict[str, dict[str, Any]] = {folder: {} for folder in FUNCTIONS.values()}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0] or cells[0] in ("var", "---") or set(cells[0]) <= {"-"}:
            continue
        names, values, who = ([p.strip() for p in c.split(" / ")] for c in cells)
        values = values if len(values) == len(names) else values * len(names)
        folders = list(FUNCTIONS.values()) if who == ["all"] else [w.strip() for w in who[0].split(",")]
        for name, value in zip(names, values, strict=True):
            if value.startswith("Ref "):
                expected: Any = {"Ref": value[4:]}
            elif value.startswith("Sub "):
                expected = {"Fn::Sub": value[4:]}
            elif value.startswith("GetAtt "):
                expected = {"Fn::GetAtt": value[7:].split(".", 1)}
            elif value in params:
                expected = {"Ref": value}
            else:
                expected = value
            for folder in folders:
                out[folder][name] = expected
    return out


def test_wiring_doc_parses_into_the_expected_shape() -> None:
    env = wiring_env()
    assert env["on_launch"]["AUTOJOIN_MANAGER_INSTANCE_ROLE_ID"] == getatt("ManagerInstanceRole", "RoleId")
    assert env["rotate_tokens"]["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert "AUTOJOIN_HANDOFF_TABLE" not in env["rotate_tokens"]


@pytest.mark.parametrize(("function", "folder"), sorted(FUNCTIONS.items()))
def test_function_env_is_exactly_the_wiring_contract(function: str, folder: str) -> None:
    assert props(function)["Environment"]["Variables"] == wiring_env()[folder]


@pytest.mark.parametrize(("function", "folder"), sorted(FUNCTIONS.items()))
def test_function_shape(function: str, folder: str) -> None:
    p = props(function)
    assert p["Runtime"] == "python3.12"
    assert p["Handler"] == "app.lambda_handler"
    assert p["Architectures"] == ["arm64"]
    assert p["TracingConfig"] == {"Mode": "Active"}
    assert p["Layers"] == [{"Ref": layer_id()}]
    assert p["Role"] == getatt(f"{function}Role", "Arn")
    assert p["Code"]["S3Key"] == f"functions/{folder}.zip"  # CodeUri functions/<folder>/
    source = (tm.ROOT / "functions" / folder / "app.py").read_text()
    assert re.search(r"^def lambda_handler\(event.*context.*deps", source, re.M), "handler contract"
    assert (tm.ROOT / "functions" / folder / "Makefile").is_file()  # BuildMethod makefile (tests/build)


def test_on_launch_timeout_and_rotation_timeout() -> None:
    # a slow join must not be killed before its `finally` withdraws the ticket: the function's timeout
    # exceeds one whole join budget (the node's join timeout + the Ready wait + the clean-up margin)
    env = props("OnLaunchFunction")["Environment"]["Variables"]
    settings = Settings.from_env({k: v for k, v in env.items() if isinstance(v, str)} | _REQUIRED)
    budget = LaunchConfig(
        cluster="c", join_wait=settings.join_wait, join_timeout=settings.join_timeout
    ).join_budget
    assert props("OnLaunchFunction")["Timeout"] >= budget + 30
    assert 60 <= props("RotateTokensFunction")["Timeout"] <= 900
    assert props("RotateTokensFunction")["Timeout"] < LEASE_TTL  # the lease outlives a rotation step


_REQUIRED = {"AUTOJOIN_CLUSTER": "c", "AUTOJOIN_STATE_TABLE": "t"}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_logging_is_configured_explicitly(function: str) -> None:
    assert props(function)["LoggingConfig"] == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": {"Ref": "LogLevel"},
        "SystemLogLevel": "WARN",
    }
    allowed = tm.raw()["Parameters"]["LogLevel"]["AllowedValues"]
    assert set(allowed) <= {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}  # Lambda's names


def test_layer() -> None:
    raw_layer = tm.raw()["Resources"]["AutojoinLayer"]
    assert raw_layer["Properties"]["ContentUri"] == "layers/autojoin"
    assert raw_layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert props(layer_id())["CompatibleRuntimes"] == ["python3.12"]
    assert (tm.ROOT / "layers" / "autojoin" / "autojoin" / "__init__.py").is_file()
    requirements = (tm.ROOT / "layers" / "autojoin" / "requirements.txt").read_text()
    for dep in ("aws-lambda-powertools", "pydantic"):
        assert re.search(rf"^{re.escape(dep)}(\[|>|=|$)", requirements, re.M), dep


# --- launch lifecycle: rule -> target -> permission -> DLQ / destination ------------------------


def group_names() -> list[Any]:
    return [props(g)["AutoScalingGroupName"] for g in ("ManagerGroup", "WorkerGroup")]


def test_launch_rule_pattern_names_exactly_the_two_groups() -> None:
    rule = props(LAUNCH_RULE)
    assert rule["EventPattern"] == {
        "source": ["aws.autoscaling"],
        "detail-type": ["EC2 Instance-launch Lifecycle Action"],
        "detail": {"AutoScalingGroupName": group_names(), "LifecycleHookName": ["autojoin-launch"]},
    }
    assert rule.get("State", "ENABLED") == "ENABLED"


def test_launch_rule_targets_on_launch_with_retries_and_dead_letters() -> None:
    (target,) = props(LAUNCH_RULE)["Targets"]
    assert target["Arn"] == getatt("OnLaunchFunction", "Arn")
    assert target["DeadLetterConfig"] == {"Arn": getatt("FailureQueue", "Arn")}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert "Input" not in target and "InputTransformer" not in target  # the handler gets the event as is


def test_events_may_invoke_on_launch_from_that_rule_only() -> None:
    perm = props(f"{LAUNCH_RULE}Permission")
    assert perm == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Ref": "OnLaunchFunction"},
        "Principal": "events.amazonaws.com",
        "SourceArn": getatt(LAUNCH_RULE, "Arn"),
    }


def test_dead_letters_may_reach_the_failure_queue() -> None:
    policy = props("FailureQueuePolicy")
    assert policy["Queues"] == [{"Ref": "FailureQueue"}]
    launch, terminate = policy["PolicyDocument"]["Statement"]
    for stmt, rule in ((launch, LAUNCH_RULE), (terminate, TERMINATE_RULE)):
        assert stmt["Principal"] == {"Service": "events.amazonaws.com"}
        assert stmt["Action"] == "sqs:SendMessage"
        assert stmt["Resource"] == getatt("FailureQueue", "Arn")
        assert stmt["Condition"] == {"ArnEquals": {"aws:SourceArn": getatt(rule, "Arn")}}


def test_on_launch_async_failures_go_to_the_failure_queue() -> None:
    config = props("OnLaunchFunctionEventInvokeConfig")
    assert config["FunctionName"] == {"Ref": "OnLaunchFunction"}
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == getatt("FailureQueue", "Arn")
    # SAM grants the function sqs:SendMessage on exactly that queue
    (policy,) = [
        p for p in props("OnLaunchFunctionRole")["Policies"] if p["PolicyName"].endswith("OnFailureSQSPolicy")
    ]
    (stmt,) = policy["PolicyDocument"]["Statement"]
    assert stmt["Action"] == "sqs:SendMessage"
    assert stmt["Resource"] == getatt("FailureQueue", "Arn")


def test_groups_are_created_after_the_rule_and_its_permission() -> None:
    for group in ("ManagerGroup", "WorkerGroup"):
        depends = res(group)["DependsOn"]
        # and after the function's log group (else Lambda creates it first, without a retention)
        assert {
            LAUNCH_RULE,
            f"{LAUNCH_RULE}Permission",
            TERMINATE_RULE,
            f"{TERMINATE_RULE}Permission",
            "TerminationPolicyPermission",
            "OnLaunchFunctionLogGroup",
        } <= set(depends)
        for dep in depends:
            assert dep in tm.resources()  # the SAM-generated ids exist after the transform


def test_alarms_watch_the_failure_queue_and_on_launch_errors() -> None:
    queue = props("FailureQueueDepthAlarm")
    assert queue["Namespace"] == "AWS/SQS"
    assert queue["Dimensions"] == [{"Name": "QueueName", "Value": getatt("FailureQueue", "QueueName")}]
    errors = props("OnLaunchErrorsAlarm")
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "OnLaunchFunction"}}]


# --- groups, hooks, launch templates ------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "role", "template", "count"),
    [
        ("ManagerGroup", "manager", "ManagerLaunchTemplate", "ManagerCount"),
        ("WorkerGroup", "worker", "WorkerLaunchTemplate", "WorkerCount"),
    ],
)
def test_group(group: str, role: str, template: str, count: str) -> None:
    p = props(group)
    assert p["AutoScalingGroupName"] == {"Fn::Sub": f"${{AWS::StackName}}-{role}"}
    tags = {t["Key"]: t for t in p["Tags"]}
    assert tags["autojoin:cluster"] == {
        "Key": "autojoin:cluster",
        "Value": {"Ref": "ClusterName"},
        "PropagateAtLaunch": False,
    }
    assert tags["autojoin:role"] == {"Key": "autojoin:role", "Value": role, "PropagateAtLaunch": False}
    assert p["LifecycleHookSpecificationList"] == [
        {
            "LifecycleHookName": "autojoin-launch",
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "DefaultResult": "ABANDON",
            "HeartbeatTimeout": {"Ref": "LaunchHookTimeout"},
        },
        {
            "LifecycleHookName": "autojoin-terminate",
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
            # a manager nobody answers for is retained; a worker nobody answers for may go
            "DefaultResult": "ABANDON" if role == "manager" else "CONTINUE",
            "HeartbeatTimeout": {"Ref": "TerminateHookTimeout"},
        },
    ]
    assert p["TerminationPolicies"] == [getatt("TerminationPolicyFunction", "Arn")]
    retention = {"RetentionTriggers": {"TerminateHookAbandon": "retain"}}
    assert p.get("InstanceLifecyclePolicy") == (retention if role == "manager" else None)
    assert p["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": template}
    assert p["CapacityRebalance"] is False
    assert p["AvailabilityZoneDistribution"] == {"CapacityDistributionStrategy": "balanced-only"}
    assert p["VPCZoneIdentifier"] == {"Ref": "SubnetIds"}
    assert p["DesiredCapacity"] == {"Ref": count}
    assert p.get("NewInstancesProtectedFromScaleIn", False) is (role == "manager")


@pytest.mark.parametrize(
    ("template", "role"), [("ManagerLaunchTemplate", "Manager"), ("WorkerLaunchTemplate", "Worker")]
)
def test_launch_template(template: str, role: str) -> None:
    data = props(template)["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert data["IamInstanceProfile"] == {"Arn": getatt(f"{role}InstanceProfile", "Arn")}
    assert props(f"{role}InstanceProfile")["Roles"] == [{"Ref": f"{role}InstanceRole"}]
    assert data["ImageId"] == {"Ref": "ImageId"}
    assert "Fn::Base64" in data["UserData"]


# --- state, hand-off, secrets, rotation ---------------------------------------------------------


def _sse(table: str) -> None:
    p = props(table)
    assert p["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": getatt("AutojoinKey", "Arn"),
    }
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_state_table() -> None:
    _sse("StateTable")
    assert props("StateTable")["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]


def test_handoff_table() -> None:
    _sse("HandoffTable")
    assert props("HandoffTable")["KeySchema"] == [{"AttributeName": "principal", "KeyType": "HASH"}]
    assert props("HandoffTable")["AttributeDefinitions"] == [
        {"AttributeName": "principal", "AttributeType": "S"}
    ]


@pytest.mark.parametrize("secret", ["ManagerTokenSecret", "WorkerTokenSecret"])
def test_token_secret_is_created_empty_with_the_key(secret: str) -> None:
    p = props(secret)
    assert p["KmsKeyId"] == getatt("AutojoinKey", "Arn")
    assert "SecretString" not in p and "GenerateSecretString" not in p  # the swarm makes the tokens


@pytest.mark.parametrize(
    ("rotation", "secret", "permission"),
    [
        ("ManagerTokenRotation", "ManagerTokenSecret", "RotateTokensManagerSecretPermission"),
        ("WorkerTokenRotation", "WorkerTokenSecret", "RotateTokensWorkerSecretPermission"),
    ],
)
def test_rotation_schedule_and_permission(rotation: str, secret: str, permission: str) -> None:
    p = props(rotation)
    assert p["SecretId"] == {"Ref": secret}
    assert p["RotationLambdaARN"] == getatt("RotateTokensFunction", "Arn")
    assert p["RotationRules"] == {"ScheduleExpression": {"Ref": "TokenRotationSchedule"}}
    assert p["RotateImmediatelyOnUpdate"] is False
    assert res(rotation)["DependsOn"] == permission
    assert props(permission) == {
        "FunctionName": getatt("RotateTokensFunction", "Arn"),
        "Action": "lambda:InvokeFunction",
        "Principal": "secretsmanager.amazonaws.com",
        "SourceAccount": {"Ref": "AWS::AccountId"},
        "SourceArn": {"Ref": secret},
    }


def test_parameters_of_the_contract() -> None:
    params = tm.raw()["Parameters"]
    defaults = {
        "ClusterName": "demo",
        "ManagerCount": 3,
        "WorkerCount": 2,
        "TokenRotationSchedule": "rate(30 days)",
        "LaunchHookTimeout": 900,
        "LogLevel": "INFO",
    }
    for name, default in defaults.items():
        assert params[name]["Default"] == default, name
    for name in ("SubnetIds", "ImageId", "ManagerInstanceType", "WorkerInstanceType"):
        assert name in params
    assert params["SubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"


def test_key_and_alias() -> None:
    assert props("AutojoinKey")["EnableKeyRotation"] is True
    assert props("AutojoinKeyAlias")["TargetKeyId"] == {"Ref": "AutojoinKey"}


# --- the quorum guard ---------------------------------------------------------------------------


def test_terminate_rule_matches_autojoin_s_hook_on_the_two_groups_only() -> None:
    rule = props(TERMINATE_RULE)
    assert rule["EventPattern"] == {
        "source": ["aws.autoscaling"],
        "detail-type": ["EC2 Instance-terminate Lifecycle Action"],
        "detail": {"AutoScalingGroupName": group_names(), "LifecycleHookName": ["autojoin-terminate"]},
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == getatt("OnTerminateFunction", "Arn")
    assert target["DeadLetterConfig"] == {"Arn": getatt("FailureQueue", "Arn")}
    perm = props(f"{TERMINATE_RULE}Permission")
    assert perm["Principal"] == "events.amazonaws.com"
    assert perm["SourceArn"] == getatt(TERMINATE_RULE, "Arn")


def test_guard_schedule_runs_on_terminate() -> None:
    rule = props(GUARD_SCHEDULE)
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    assert rule["Name"] == {"Fn::Sub": "${AWS::StackName}-autojoin-guard"}
    (target,) = rule["Targets"]
    assert target["Arn"] == getatt("OnTerminateFunction", "Arn")


def test_only_auto_scaling_s_service_linked_role_may_call_the_termination_policy() -> None:
    perm = props("TerminationPolicyPermission")
    assert perm["FunctionName"] == getatt("TerminationPolicyFunction", "Arn")
    assert perm["Action"] == "lambda:InvokeFunction"
    principal = perm["Principal"]["Fn::Sub"]
    assert principal.endswith(":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling")
    assert props("TerminationPolicyFunction")["Timeout"] <= 2  # AWS allows it 2 seconds


def test_retention_raises_an_alarm() -> None:
    alarm = props("ManagerRetainedAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Autojoin", "ManagerRetained")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "autojoin"}]
    for fn in ("OnTerminateFunction", "TerminationPolicyFunction"):
        errors = props(f"{fn.removesuffix('Function')}ErrorsAlarm")
        assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": fn}}]


def test_min_managers_is_an_odd_floor() -> None:
    param = tm.raw()["Parameters"]["MinManagers"]
    assert param["Default"] == 3 and all(v % 2 == 1 for v in param["AllowedValues"])
