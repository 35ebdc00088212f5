"""IAM in template.yaml, evaluated offline (tests/template/iam_eval.py) on a fake deployment.

Proves: a worker reaches no secret and only its own hand-off row; a manager only its own row and
only the pending token versions; the KMS key is usable only through Secrets Manager / DynamoDB;
each function holds exactly the actions its code uses; "*" resources only where AWS offers no
resource-level permission. The last tests show the evaluator is not vacuous: broadened policies
are reported as allowing.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import cfnlint
import pytest
from tests.template import template_model as tm
from tests.template.iam_eval import (
    Request,
    actions_granted,
    evaluate_with_resource_policy,
    is_allowed,
    resolve,
    statements_of,
)

WORKER = f"{tm.WORKER_ROLE_ID}:i-1"
OTHER_WORKER = f"{tm.WORKER_ROLE_ID}:i-9"
MANAGER = f"{tm.MANAGER_ROLE_ID}:i-2"
OTHER_MANAGER = f"{tm.MANAGER_ROLE_ID}:i-3"
SECRETS = (tm.MANAGER_SECRET, tm.WORKER_SECRET, tm.OTHER_SECRET)
SECRET_ACTIONS = (
    "secretsmanager:GetSecretValue",
    "secretsmanager:BatchGetSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:ListSecretVersionIds",
    "secretsmanager:GetResourcePolicy",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:RotateSecret",
    "secretsmanager:RestoreSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:PutResourcePolicy",
)
ITEM_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
)


def take_row(
    caller: str, row: str, action: str = "dynamodb:DeleteItem", table: str = tm.HANDOFF_TABLE_ARN
) -> Request:
    return Request(action, table, {"aws:userid": caller, "dynamodb:LeadingKeys": [row]})


def secret_call(caller: str, action: str, secret: str, **extra: Any) -> Request:
    return Request(action, secret, {"aws:userid": caller, **extra})


@pytest.fixture(scope="module")
def worker() -> list[dict[str, Any]]:
    return tm.role_policies("WorkerInstanceRole")


@pytest.fixture(scope="module")
def manager() -> list[dict[str, Any]]:
    return tm.role_policies("ManagerInstanceRole")


@pytest.fixture(scope="module")
def on_launch() -> list[dict[str, Any]]:
    return tm.role_policies("OnLaunchFunctionRole")


@pytest.fixture(scope="module")
def rotate() -> list[dict[str, Any]]:
    return tm.role_policies("RotateTokensFunctionRole")


# --- worker -------------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("action", SECRET_ACTIONS)
def test_worker_cannot_touch_any_secret(worker: list[dict[str, Any]], action: str, secret: str) -> None:
    for stage in (
        {},
        {"secretsmanager:VersionStage": "AWSPENDING"},
        {"secretsmanager:VersionStage": "AWSCURRENT"},
    ):
        assert not is_allowed(worker, secret_call(WORKER, action, secret, **stage))


def test_worker_takes_its_own_row(worker: list[dict[str, Any]]) -> None:
    assert is_allowed(worker, take_row(WORKER, WORKER))


@pytest.mark.parametrize(
    "row", [OTHER_WORKER, MANAGER, OTHER_MANAGER, f"{tm.MANAGER_ROLE_ID}:i-1", "i-1", ""]
)
def test_worker_cannot_take_another_principals_row(worker: list[dict[str, Any]], row: str) -> None:
    # "AROAMANAGER:i-1" is the row the Lambda would write were i-1 a manager: a worker cannot take it
    assert not is_allowed(worker, take_row(WORKER, row))


def test_worker_cannot_take_its_row_together_with_another(worker: list[dict[str, Any]]) -> None:
    # ForAllValues: every leading key of the request must be the caller's own
    both = Request(
        "dynamodb:DeleteItem",
        tm.HANDOFF_TABLE_ARN,
        {"aws:userid": WORKER, "dynamodb:LeadingKeys": [WORKER, MANAGER]},
    )
    assert not is_allowed(worker, both)


@pytest.mark.parametrize("action", [a for a in ITEM_ACTIONS if a != "dynamodb:DeleteItem"])
def test_worker_can_do_nothing_else_with_its_row(worker: list[dict[str, Any]], action: str) -> None:
    assert not is_allowed(worker, take_row(WORKER, WORKER, action))


@pytest.mark.parametrize("action", ITEM_ACTIONS)
def test_worker_cannot_touch_the_state_table(worker: list[dict[str, Any]], action: str) -> None:
    assert not is_allowed(worker, take_row(WORKER, "demo", action, tm.STATE_TABLE_ARN))


def test_worker_key_use_only_via_dynamodb(worker: list[dict[str, Any]]) -> None:
    key = tm.key_policy()

    def kms(action: str, via: str | None) -> bool:
        ctx: dict[str, Any] = {"aws:userid": WORKER, "kms:CallerAccount": tm.ACCOUNT}
        if via:
            ctx["kms:ViaService"] = via
        return evaluate_with_resource_policy(
            worker, key, Request(action, tm.KEY_ARN, ctx), account_root=tm.ACCOUNT_ROOT
        )

    assert kms("kms:Decrypt", f"dynamodb.{tm.REGION}.amazonaws.com")
    assert not kms("kms:Decrypt", f"secretsmanager.{tm.REGION}.amazonaws.com")
    assert not kms("kms:Decrypt", None)
    assert not kms("kms:GenerateDataKey", f"dynamodb.{tm.REGION}.amazonaws.com")


def test_worker_cannot_change_group_tags_or_run_commands(worker: list[dict[str, Any]]) -> None:
    # the role comes from the group's tags: no node may (re)write them, nor drive other nodes
    for action in ("autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags", "ec2:CreateTags"):
        assert not is_allowed(worker, Request(action, tm.group_arn(tm.MANAGER_GROUP), {"aws:userid": WORKER}))
    assert not is_allowed(worker, Request("ssm:SendCommand", tm.instance_arn("i-2"), {"aws:userid": WORKER}))


# --- manager ------------------------------------------------------------------------------------


def test_manager_takes_only_its_own_row(manager: list[dict[str, Any]]) -> None:
    assert is_allowed(manager, take_row(MANAGER, MANAGER))
    for row in (OTHER_MANAGER, WORKER, f"{tm.WORKER_ROLE_ID}:i-2"):
        assert not is_allowed(manager, take_row(MANAGER, row))
    assert not is_allowed(manager, take_row(MANAGER, MANAGER, "dynamodb:GetItem"))


@pytest.mark.parametrize("secret", [tm.MANAGER_SECRET, tm.WORKER_SECRET])
def test_manager_stores_tokens_and_reads_only_pending_versions(
    manager: list[dict[str, Any]], secret: str
) -> None:
    assert is_allowed(manager, secret_call(MANAGER, "secretsmanager:PutSecretValue", secret))
    pending = {"secretsmanager:VersionStage": "AWSPENDING"}
    assert is_allowed(manager, secret_call(MANAGER, "secretsmanager:GetSecretValue", secret, **pending))
    assert not is_allowed(manager, secret_call(MANAGER, "secretsmanager:GetSecretValue", secret))
    current = {"secretsmanager:VersionStage": "AWSCURRENT"}
    assert not is_allowed(manager, secret_call(MANAGER, "secretsmanager:GetSecretValue", secret, **current))
    for action in (
        "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:DeleteSecret",
        "secretsmanager:UpdateSecret",
    ):
        assert not is_allowed(manager, secret_call(MANAGER, action, secret))


def test_manager_has_nothing_on_other_secrets(manager: list[dict[str, Any]]) -> None:
    for action in SECRET_ACTIONS:
        assert not is_allowed(
            manager,
            secret_call(MANAGER, action, tm.OTHER_SECRET, **{"secretsmanager:VersionStage": "AWSPENDING"}),
        )


# --- functions ----------------------------------------------------------------------------------

# Each function's actions, from its code (adapters/aws/*, the Powertools parameters provider and
# idempotency layer) - see test_expected_actions_are_the_ones_the_code_calls.
EXPECTED_ACTIONS: dict[str, set[str]] = {
    "OnLaunchFunctionRole": {
        "autoscaling:CompleteLifecycleAction",  # Fleet.complete
        "autoscaling:RecordLifecycleActionHeartbeat",  # Fleet.heartbeat (instances waiting for a manager)
        "autoscaling:DescribeAutoScalingGroups",  # Fleet.group / cluster_groups / instances
        "autoscaling:DescribeAutoScalingInstances",  # Fleet.instances (lifecycle states)
        "ec2:DescribeInstances",  # Fleet.instance(s): AZ, IP, type
        "ssm:SendCommand",  # SsmCommandRunner.run: `autojoin-node join/init/...`
        "ssm:GetCommandInvocation",
        "ssm:CancelCommand",
        "secretsmanager:GetSecretValue",  # TokenVault.token (Powertools SecretsProvider, cached)
        "secretsmanager:DescribeSecret",  # TokenVault.has_token / pending version on refresh
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",  # StateStore.pending
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "sqs:SendMessage",  # the on-failure destination (added by SAM for EventInvokeConfig)
    },
    "RotateTokensFunctionRole": {
        "secretsmanager:DescribeSecret",  # stages, pending version
        "secretsmanager:GetSecretValue",  # testSecret reads AWSPENDING
        "secretsmanager:UpdateSecretVersionStage",  # finishSecret
        "ssm:SendCommand",  # `autojoin-node rotate/check-token` on a manager
        "ssm:GetCommandInvocation",
        "ssm:CancelCommand",
        "autoscaling:DescribeAutoScalingGroups",  # manager_instances()
        "autoscaling:DescribeAutoScalingInstances",
        "ec2:DescribeInstances",
        "dynamodb:GetItem",  # the snapshot: last known leader first; is the cluster bootstrapped
        "dynamodb:PutItem",  # the cluster lease (rotations are serialised with other changes)
        "dynamodb:DeleteItem",  # ... and its release
        "kms:Decrypt",
        "kms:GenerateDataKey",  # the lease item, through DynamoDB
    },
    "ReconcileFunctionRole": {
        "autoscaling:CompleteLifecycleAction",  # pending joins (LaunchService's pending path)
        "autoscaling:RecordLifecycleActionHeartbeat",
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeAutoScalingInstances",
        "ec2:DescribeInstances",
        "autoscaling:SetDesiredCapacity",  # Fleet.set_desired: the rebalance surge
        "autoscaling:UpdateAutoScalingGroup",  # Fleet.set_desired: MaxSize raised with it
        "autoscaling:TerminateInstanceInAutoScalingGroup",  # Fleet.terminate: retire through the group
        "autoscaling:SetInstanceProtection",  # Fleet.set_protection: re-sync, lifted before a retire
        "ssm:SendCommand",  # joins and labels on the nodes
        "ssm:GetCommandInvocation",
        "ssm:CancelCommand",
        "secretsmanager:GetSecretValue",  # joins of pending launches
        "secretsmanager:DescribeSecret",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "sqs:SendMessage",  # the on-failure destination
    },
    "OnTerminateFunctionRole": {
        "autoscaling:CompleteLifecycleAction",  # Fleet.complete (CONTINUE / ABANDON)
        "autoscaling:RecordLifecycleActionHeartbeat",  # Fleet.heartbeat (a removal that waits)
        "autoscaling:SetInstanceProtection",  # Fleet.set_protection (the manager the guard releases)
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeAutoScalingInstances",
        "ec2:DescribeInstances",
        "ssm:SendCommand",  # docker node demote / rm / swarm leave through a manager or the node
        "ssm:GetCommandInvocation",
        "ssm:CancelCommand",
        "dynamodb:GetItem",  # snapshot, lease holder, waiting removal
        "dynamodb:PutItem",  # snapshot, lease (conditional), waiting removal
        "dynamodb:DeleteItem",  # lease release, waiting removal done
        "dynamodb:Query",  # StateStore.removals
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "sqs:SendMessage",  # the on-failure destination
    },
    "TerminationPolicyFunctionRole": {
        "dynamodb:GetItem",  # the one snapshot read
        "kms:Decrypt",
    },
    "ManagerInstanceRole": {
        "dynamodb:DeleteItem",
        "secretsmanager:PutSecretValue",
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    },
    "WorkerInstanceRole": {"dynamodb:DeleteItem", "kms:Decrypt"},
}
EXPECTED_MANAGED: dict[str, set[str]] = {
    "OnLaunchFunctionRole": {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    },
    "RotateTokensFunctionRole": {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    },
    "ReconcileFunctionRole": {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    },
    "OnTerminateFunctionRole": {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    },
    "TerminationPolicyFunctionRole": {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    },
    "ManagerInstanceRole": {"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"},
    "WorkerInstanceRole": {"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"},
}


@pytest.mark.parametrize("role", sorted(EXPECTED_ACTIONS))
def test_each_role_holds_exactly_the_expected_actions(role: str) -> None:
    granted = actions_granted(tm.inline_policies(role))
    assert granted == {a.lower() for a in EXPECTED_ACTIONS[role]}
    managed = set(resolve(tm.resources()[role]["Properties"].get("ManagedPolicyArns", []), tm.PHYSICAL))
    assert managed == EXPECTED_MANAGED[role]


ADAPTERS = tm.ROOT / "layers" / "autojoin" / "autojoin" / "adapters" / "aws"
_CALL = re.compile(r"self\._(asg|ec2|db|ssm|client)\.(\w+)\(")
_PAGINATOR = re.compile(r"self\._(asg|ec2|db|ssm|client)\.get_paginator\(\"(\w+)\"\)")
_SERVICE = {"asg": "autoscaling", "ec2": "ec2", "db": "dynamodb", "ssm": "ssm", "client": "secretsmanager"}
# what the Powertools utilities the adapters use call on their own
POWERTOOLS = {
    "secretsmanager:GetSecretValue",  # parameters.SecretsProvider
    "dynamodb:PutItem",  # idempotency.DynamoDBPersistenceLayer
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
}
NOT_YET_USED_BY_A_FUNCTION: set[str] = set()


def _camel(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


def code_actions(source_dir: Path) -> set[str]:
    out: set[str] = set()
    for path in sorted(source_dir.glob("*.py")):
        text = path.read_text()
        for attr, method in _CALL.findall(text) + _PAGINATOR.findall(text):
            if method != "get_paginator":
                out.add(f"{_SERVICE[attr]}:{_camel(method)}")
    return out


def test_expected_actions_are_the_ones_the_code_calls() -> None:
    """The functions together hold every AWS action the adapters call, and no
    function holds a service action the adapters or Powertools never call."""
    called = code_actions(ADAPTERS)
    assert "dynamodb:DeleteItem" in called and "ssm:SendCommand" in called  # the scan sees the adapters
    functions = set().union(*(v for k, v in EXPECTED_ACTIONS.items() if k.endswith("FunctionRole")))
    missing = called - NOT_YET_USED_BY_A_FUNCTION - functions
    assert not missing, f"adapters call actions no function holds: {sorted(missing)}"
    extra = {a for a in functions if a.split(":")[0] not in {"kms", "sqs"}} - called - POWERTOOLS
    assert not extra, f"functions hold actions no code calls: {sorted(extra)}"


def test_node_roles_hold_what_the_agent_calls() -> None:
    agent = (tm.ROOT / "layers" / "autojoin" / "autojoin" / "node" / "agent.py").read_text()
    calls = set(re.findall(r"(secretsmanager|dynamodb)_client\.(\w+)\(", agent))
    called = {f"{svc}:{_camel(m)}" for svc, m in calls}
    assert called == {"dynamodb:DeleteItem", "secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue"}
    node = EXPECTED_ACTIONS["ManagerInstanceRole"] - {"kms:Decrypt", "kms:GenerateDataKey"}
    assert node == called
    # the agent reads the pending version only, with the stage the IAM condition requires
    assert 'VersionStage="AWSPENDING"' in agent


def test_on_launch_reaches_only_this_stacks_secrets_and_groups(on_launch: list[dict[str, Any]]) -> None:
    ctx = {"aws:userid": "AROAFUNCTION:OnLaunch"}
    for secret in (tm.MANAGER_SECRET, tm.WORKER_SECRET):
        assert is_allowed(on_launch, Request("secretsmanager:GetSecretValue", secret, ctx))
        assert not is_allowed(on_launch, Request("secretsmanager:PutSecretValue", secret, ctx))
    assert not is_allowed(on_launch, Request("secretsmanager:GetSecretValue", tm.OTHER_SECRET, ctx))
    for group in (tm.MANAGER_GROUP, tm.WORKER_GROUP):
        assert is_allowed(on_launch, Request("autoscaling:CompleteLifecycleAction", tm.group_arn(group), ctx))
    assert not is_allowed(
        on_launch, Request("autoscaling:CompleteLifecycleAction", tm.group_arn("prod-web"), ctx)
    )
    assert not is_allowed(
        on_launch, Request("autoscaling:CompleteLifecycleAction", tm.group_arn(f"{tm.MANAGER_GROUP}-x"), ctx)
    )


def _send(policies: list[dict[str, Any]], group: str | None) -> bool:
    """SendCommand authorises the document and the instance: both must be allowed."""
    tags = {"ssm:resourceTag/aws:autoscaling:groupName": group} if group else {}
    document = Request("ssm:SendCommand", tm.RUN_SHELL_DOCUMENT_ARN, {})
    instance = Request("ssm:SendCommand", tm.instance_arn("i-0abc"), tags)
    return is_allowed(policies, document) and is_allowed(policies, instance)


def test_commands_reach_only_cluster_nodes(
    on_launch: list[dict[str, Any]], rotate: list[dict[str, Any]]
) -> None:
    assert _send(on_launch, tm.MANAGER_GROUP)
    assert _send(on_launch, tm.WORKER_GROUP)
    assert not _send(on_launch, "prod-web")
    assert not _send(on_launch, None)
    assert _send(rotate, tm.MANAGER_GROUP)
    assert not _send(rotate, tm.WORKER_GROUP)  # tokens are rotated and checked on managers only
    other_document = Request(
        "ssm:SendCommand", f"arn:aws:ssm:{tm.REGION}::document/AWS-RunPowerShellScript", {}
    )
    assert not is_allowed(on_launch, other_document)


def test_rotation_function_never_writes_a_token(rotate: list[dict[str, Any]]) -> None:
    for secret in (tm.MANAGER_SECRET, tm.WORKER_SECRET):
        assert not is_allowed(rotate, Request("secretsmanager:PutSecretValue", secret, {}))
        assert is_allowed(rotate, Request("secretsmanager:UpdateSecretVersionStage", secret, {}))


def test_handoff_is_written_by_on_launch_only() -> None:
    for role in ("RotateTokensFunctionRole", "ManagerInstanceRole", "WorkerInstanceRole"):
        put = Request(
            "dynamodb:PutItem", tm.HANDOFF_TABLE_ARN, {"dynamodb:LeadingKeys": [WORKER], "aws:userid": WORKER}
        )
        assert not is_allowed(tm.role_policies(role), put)
    assert is_allowed(
        tm.role_policies("OnLaunchFunctionRole"),
        Request("dynamodb:PutItem", tm.HANDOFF_TABLE_ARN, {"dynamodb:LeadingKeys": [WORKER]}),
    )


def test_nothing_but_the_two_kms_paths_can_use_the_key() -> None:
    key = tm.key_policy()
    direct = Request("kms:Decrypt", tm.KEY_ARN, {"kms:CallerAccount": tm.ACCOUNT})
    admin_everything = [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
    # even an account admin with "*" cannot decrypt outside Secrets Manager / DynamoDB
    assert not evaluate_with_resource_policy(admin_everything, key, direct, account_root=tm.ACCOUNT_ROOT)
    via_ssm = Request(
        "kms:Decrypt",
        tm.KEY_ARN,
        {"kms:CallerAccount": tm.ACCOUNT, "kms:ViaService": f"ssm.{tm.REGION}.amazonaws.com"},
    )
    assert not evaluate_with_resource_policy(admin_everything, key, via_ssm, account_root=tm.ACCOUNT_ROOT)
    via_sm = Request(
        "kms:Decrypt",
        tm.KEY_ARN,
        {"kms:CallerAccount": tm.ACCOUNT, "kms:ViaService": f"secretsmanager.{tm.REGION}.amazonaws.com"},
    )
    assert evaluate_with_resource_policy(admin_everything, key, via_sm, account_root=tm.ACCOUNT_ROOT)
    # no grant can be made outside the two services either (kms:Create* once allowed kms:CreateGrant)
    for action in ("kms:CreateGrant", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom"):
        grant = Request(action, tm.KEY_ARN, {"kms:CallerAccount": tm.ACCOUNT})
        assert not evaluate_with_resource_policy(admin_everything, key, grant, account_root=tm.ACCOUNT_ROOT)
    admin = next(st for st in key["Statement"] if st.get("Sid") == "AccountAdministersTheKey")
    assert not [a for a in admin["Action"] if "*" in a], "the administration statement names its actions"
    # and the account keeps administering it (no lock-out)
    put_policy = Request("kms:PutKeyPolicy", tm.KEY_ARN, {})
    assert evaluate_with_resource_policy(admin_everything, key, put_policy, account_root=tm.ACCOUNT_ROOT)


# --- "*" resources and secret ARNs --------------------------------------------------------------

NO_RESOURCE_LEVEL = {
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "ec2:DescribeInstances",
    "ssm:GetCommandInvocation",
    "ssm:CancelCommand",
}


def _cfnlint_policy_data() -> dict[str, Any]:
    path = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_star_resources_only_for_actions_without_resource_level_permissions() -> None:
    data = _cfnlint_policy_data()
    for action in NO_RESOURCE_LEVEL:  # cfn-lint's copy of the Service Authorization Reference agrees
        service, name = action.split(":")
        assert not data[service]["Actions"][name.lower()].get("Resources"), action
    for role in EXPECTED_ACTIONS:
        for stmt in statements_of(tm.inline_policies(role)):
            resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
            actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
            if "*" in resources:
                assert set(actions) <= NO_RESOURCE_LEVEL, (role, stmt.get("Sid"), actions)
            for action in actions:
                assert "*" not in action, (role, action)
                if action.startswith("secretsmanager:"):
                    assert set(resources) <= {tm.MANAGER_SECRET, tm.WORKER_SECRET}, (role, resources)


def test_secret_arns_in_raw_template_are_refs_not_patterns() -> None:
    text = tm.TEMPLATE.read_text()
    assert ":secret:" not in text  # never a hand-built (wildcard) secret ARN: only !Ref of the secret


# --- the evaluator is not vacuous ---------------------------------------------------------------


def test_broadened_worker_policy_is_reported_as_allowing(worker: list[dict[str, Any]]) -> None:
    grant = {"Statement": [{"Effect": "Allow", "Action": "secretsmanager:Get*", "Resource": "*"}]}
    broadened = [*copy.deepcopy(worker), grant]
    assert is_allowed(broadened, secret_call(WORKER, "secretsmanager:GetSecretValue", tm.MANAGER_SECRET))


def test_worker_policy_without_the_leading_keys_condition_lets_it_take_a_manager_row(
    worker: list[dict[str, Any]],
) -> None:
    loose = copy.deepcopy(worker)
    for stmt in statements_of(loose):
        if stmt.get("Sid") == "TakeOwnHandoffTicket":
            del stmt["Condition"]  # type: ignore[attr-defined]
    assert is_allowed(loose, take_row(WORKER, MANAGER))


def test_a_wrong_policy_variable_is_caught(worker: list[dict[str, Any]]) -> None:
    wrong = copy.deepcopy(worker)
    for stmt in statements_of(wrong):
        if stmt.get("Sid") == "TakeOwnHandoffTicket":
            stmt["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"] = ["${aws:username}"]
    # aws:username does not exist for role sessions: the statement silently stops matching
    assert not is_allowed(wrong, take_row(WORKER, WORKER))


def test_deny_statement_wins(manager: list[dict[str, Any]]) -> None:
    deny = {"Statement": [{"Effect": "Deny", "Action": "secretsmanager:*", "Resource": tm.MANAGER_SECRET}]}
    denied = [*copy.deepcopy(manager), deny]
    assert not is_allowed(denied, secret_call(MANAGER, "secretsmanager:PutSecretValue", tm.MANAGER_SECRET))
    assert is_allowed(denied, secret_call(MANAGER, "secretsmanager:PutSecretValue", tm.WORKER_SECRET))


def test_only_the_guard_lifts_protection_and_only_on_this_stack_s_managers() -> None:
    guard = tm.role_policies("OnTerminateFunctionRole")
    ctx = {"aws:userid": "AROAFUNCTION:OnTerminate"}
    assert is_allowed(
        guard, Request("autoscaling:SetInstanceProtection", tm.group_arn(tm.MANAGER_GROUP), ctx)
    )
    for group in (tm.WORKER_GROUP, "prod-web", f"{tm.MANAGER_GROUP}-x"):
        assert not is_allowed(guard, Request("autoscaling:SetInstanceProtection", tm.group_arn(group), ctx))
    for role in ("OnLaunchFunctionRole", "RotateTokensFunctionRole", "TerminationPolicyFunctionRole"):
        others = tm.role_policies(role)
        assert not is_allowed(
            others, Request("autoscaling:SetInstanceProtection", tm.group_arn(tm.MANAGER_GROUP), ctx)
        )
    for secret in (tm.MANAGER_SECRET, tm.WORKER_SECRET):  # the guard never reads a token
        assert not is_allowed(guard, Request("secretsmanager:GetSecretValue", secret, ctx))


def test_the_termination_policy_only_reads_the_state_table() -> None:
    policy = tm.role_policies("TerminationPolicyFunctionRole")
    ctx = {"aws:userid": "AROAFUNCTION:TerminationPolicy"}
    assert is_allowed(policy, Request("dynamodb:GetItem", tm.STATE_TABLE_ARN, ctx))
    assert not is_allowed(policy, Request("dynamodb:PutItem", tm.STATE_TABLE_ARN, ctx))
