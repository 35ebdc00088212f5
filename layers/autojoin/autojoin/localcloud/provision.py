"""Creates the template's resources in moto (what moto models) and records the rest (functions, rules,
permissions, invoke configs) for the local cloud's own event routing and invocation.

Resources are created on demand while resolving references, which gives CloudFormation's dependency
order without a graph: ``attr("StateTable", "Arn")`` creates the table first if needed.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autojoin.localcloud.asg import LAUNCHING, AsgEngine, GroupConfig, HookSpec
from autojoin.localcloud.template import NO_VALUE, LoadedTemplate, Resolver, TemplateError


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str = "app.lambda_handler"
    code_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: int = 3
    max_retries: int = 2  # Lambda asynchronous invocation default
    max_event_age: int | None = None
    on_failure: str | None = None  # EventInvokeConfig OnFailure destination ARN
    dlq: str | None = None  # DeadLetterConfig TargetArn


@dataclass
class TargetSpec:
    id: str
    arn: str
    function: str | None  # logical id when the target is a template function
    dead_letter_arn: str | None = None
    retry_policy: dict[str, Any] | None = None


@dataclass
class RuleSpec:
    logical_id: str
    name: str
    arn: str
    pattern: dict[str, Any] | None
    schedule: str | None
    enabled: bool
    targets: list[TargetSpec]


@dataclass
class PermissionSpec:
    function_ref: str  # name or (qualified) ARN as written
    principal: str
    source_arn: str | None


@dataclass
class Stack:
    """What provisioning produced. ``env[logical_id]`` is each function's resolved environment."""

    name: str
    cluster: str
    manager_group: str
    worker_group: str
    env: dict[str, dict[str, str]]
    functions: dict[str, FunctionSpec]
    rules: list[RuleSpec]
    permissions: list[PermissionSpec]
    physical: dict[str, dict[str, Any]]
    groups: dict[str, str]  # logical id -> group name
    rotations: dict[str, str]  # secret ARN -> rotation function logical id
    parameters: dict[str, Any]

    def function_for_arn(self, arn: str) -> str | None:
        """The template function an ARN (plain, version or alias qualified) or a name designates."""
        for lid, fn in self.functions.items():
            if arn in {fn.arn, fn.name} or arn.startswith(fn.arn + ":"):
                return lid
        return None

    def permitted(self, function: str, principal: str, source_arn: str | None) -> bool:
        """Does a resource-based permission let ``principal`` (from ``source_arn``) invoke the function?"""
        for p in self.permissions:
            if self.function_for_arn(p.function_ref) != function or p.principal != principal:
                continue
            if p.source_arn is None or source_arn is None or p.source_arn == source_arn:
                return True
        return False


class Provisioner:
    def __init__(
        self,
        *,
        template: LoadedTemplate,
        session: Any,  # an unrecorded boto3 session (provisioning is not a handler's call)
        engine: AsgEngine,
        stack_name: str,
        region: str,
        account: str,
        zones: tuple[str, ...],
        params: Mapping[str, Any],
        rng: random.Random,
    ) -> None:
        self.t = template
        self.session = session
        self.engine = engine
        self.stack_name = stack_name
        self.region = region
        self.account = account
        self.rng = rng
        self.physical: dict[str, dict[str, Any]] = {}
        self._creating: set[str] = set()
        self.functions: dict[str, FunctionSpec] = {}
        self.rules: list[RuleSpec] = []
        self.permissions: list[PermissionSpec] = []
        self.invoke_configs: list[dict[str, Any]] = []
        self.rotations: dict[str, str] = {}
        self.groups: dict[str, str] = {}
        self._clients: dict[str, Any] = {}
        pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        self.params = self._parameters(params)
        self.resolver = Resolver(template.cfn, self.params, pseudo, self.attr, zones)

    # --- plumbing ----------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    def _parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, spec in self.t.parameters.items():
            if name in given:
                value = given[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no value and no default")
            kind = str(spec.get("Type", "String"))
            if (kind.startswith("List<") or kind == "CommaDelimitedList") and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            elif isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)
            out[name] = value
        return out

    def _suffix(self) -> str:
        return "".join(self.rng.choice(string.ascii_uppercase + string.digits) for _ in range(12))

    def _name(self, lid: str, given: Any = None, *, limit: int = 64) -> str:
        if given:
            return str(given)
        return f"{self.stack_name}-{lid}-{self._suffix()}"[:limit]

    def attr(self, lid: str, name: str) -> Any:
        self.ensure(lid)
        values = self.physical[lid]
        if name not in values:
            raise TemplateError(f"{lid} has no attribute {name} in the local cloud")
        return values[name]

    def provision_all(self) -> None:
        for lid in self.t.resources:
            self.ensure(lid)
        for cfg in self.invoke_configs:
            fn = self._function_of(cfg["FunctionName"])
            if fn is None:
                continue
            spec = self.functions[fn]
            spec.max_retries = int(cfg.get("MaximumRetryAttempts", spec.max_retries))
            if "MaximumEventAgeInSeconds" in cfg:
                spec.max_event_age = int(cfg["MaximumEventAgeInSeconds"])
            dest = (cfg.get("DestinationConfig") or {}).get("OnFailure") or {}
            spec.on_failure = dest.get("Destination") or spec.on_failure

    def _function_of(self, ref: str) -> str | None:
        for lid, fn in self.functions.items():
            if ref in {fn.arn, fn.name} or ref.startswith(fn.arn + ":"):
                return lid
        return None

    def ensure(self, lid: str) -> None:
        if lid in self.physical:
            return
        res = self.t.resources.get(lid)
        if res is None:
            raise TemplateError(f"no resource {lid}")
        if lid in self._creating:
            raise TemplateError(f"circular reference through {lid}")
        self._creating.add(lid)
        try:
            cond = res.get("Condition")
            if cond and not self.resolver.condition(cond):
                self.physical[lid] = {"Ref": NO_VALUE}
                return
            for dep in (
                [res["DependsOn"]] if isinstance(res.get("DependsOn"), str) else res.get("DependsOn", [])
            ):
                self.ensure(dep)
            kind = str(res.get("Type"))
            creator = _CREATORS.get(kind, Provisioner._placeholder)
            self.physical[lid] = creator(self, lid, res.get("Properties") or {})
        finally:
            self._creating.discard(lid)

    def props(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        out = self.resolver.resolve(dict(raw))
        assert isinstance(out, dict)
        return out

    # --- creators ----------------------------------------------------------------------------------

    def _placeholder(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {"Ref": f"{self.stack_name}-{lid}", "Arn": f"arn:aws:local:{self.region}:{self.account}:{lid}"}

    def _kms_key(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        meta = self.client("kms").create_key(Description=str(p.get("Description", "")))["KeyMetadata"]
        return {"Ref": meta["KeyId"], "Arn": meta["Arn"], "KeyId": meta["KeyId"]}

    def _kms_alias(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        self.client("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
        return {"Ref": p["AliasName"]}

    def _table(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        name = self._name(lid, p.get("TableName"), limit=255)
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        if args["BillingMode"] == "PROVISIONED":
            pt = p.get("ProvisionedThroughput") or {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            args["ProvisionedThroughput"] = {k: int(v) for k, v in pt.items()}
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification"):
            if key in p:
                args[key] = p[key]
        sse = p.get("SSESpecification")
        if sse:
            args["SSESpecification"] = {
                "Enabled": bool(sse.get("SSEEnabled", True)),
                **({"SSEType": sse["SSEType"]} if "SSEType" in sse else {}),
                **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if "KMSMasterKeyId" in sse else {}),
            }
        desc = self.client("dynamodb").create_table(**args)["TableDescription"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled") in {True, "true", "True"}:
            self.client("dynamodb").update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        return {"Ref": name, "Arn": desc["TableArn"], "StreamArn": desc.get("LatestStreamArn", "")}

    def _queue(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        name = self._name(lid, p.get("QueueName"), limit=80)
        if p.get("FifoQueue") in {True, "true"} and not name.endswith(".fifo"):
            name += ".fifo"
        attrs = {
            k: str(v).lower() if isinstance(v, bool) else (json.dumps(v) if isinstance(v, dict) else str(v))
            for k, v in p.items()
            if k
            in {
                "MessageRetentionPeriod",
                "VisibilityTimeout",
                "DelaySeconds",
                "FifoQueue",
                "KmsMasterKeyId",
                "SqsManagedSseEnabled",
                "RedrivePolicy",
            }
        }
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        arn = self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    def _secret(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        args: dict[str, Any] = {"Name": self._name(lid, p.get("Name"), limit=512)}
        for key in ("Description", "KmsKeyId"):
            if key in p:
                args[key] = p[key]
        if "SecretString" in p:  # only when the template sets a literal (autojoin's never do)
            args["SecretString"] = p["SecretString"]
        arn = self.client("secretsmanager").create_secret(**args)["ARN"]
        return {"Ref": arn, "Id": arn, "Arn": arn}

    def _rotation(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        target = p.get("RotationLambdaARN")
        if isinstance(target, str):
            self.rotations[str(p["SecretId"])] = target
        return {"Ref": f"{p['SecretId']}-rotation"}

    def _role(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        iam = self.client("iam")
        name = self._name(lid, p.get("RoleName"))
        role = iam.create_role(
            RoleName=name,
            Path=p.get("Path", "/"),
            AssumeRolePolicyDocument=json.dumps(p.get("AssumeRolePolicyDocument", {})),
        )["Role"]
        for pol in p.get("Policies", []) or []:
            doc = {"Version": "2012-10-17", **pol["PolicyDocument"]}
            iam.put_role_policy(RoleName=name, PolicyName=pol["PolicyName"], PolicyDocument=json.dumps(doc))
        return {"Ref": name, "Arn": role["Arn"], "RoleId": role["RoleId"]}

    def _instance_profile(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        iam = self.client("iam")
        name = self._name(lid, p.get("InstanceProfileName"))
        prof = iam.create_instance_profile(InstanceProfileName=name, Path=p.get("Path", "/"))[
            "InstanceProfile"
        ]
        for role in p.get("Roles", []):
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
        return {"Ref": name, "Arn": prof["Arn"]}

    def _launch_template(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        data = dict(p.get("LaunchTemplateData") or {})
        name = self._name(lid, p.get("LaunchTemplateName"), limit=128)
        lt = self.client("ec2").create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)[
            "LaunchTemplate"
        ]
        v = str(lt["LatestVersionNumber"])
        return {
            "Ref": lt["LaunchTemplateId"],
            "LaunchTemplateId": lt["LaunchTemplateId"],
            "LatestVersionNumber": v,
            "DefaultVersionNumber": v,
        }

    def _security_group(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        args = {
            "GroupName": self._name(lid, p.get("GroupName")),
            "Description": p.get("GroupDescription", lid),
        }
        if p.get("VpcId"):
            args["VpcId"] = p["VpcId"]
        gid = self.client("ec2").create_security_group(**args)["GroupId"]
        return {"Ref": gid, "GroupId": gid}

    def _group(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        name = self._name(lid, p.get("AutoScalingGroupName"), limit=255)
        subnets = p.get("VPCZoneIdentifier") or []
        args: dict[str, Any] = {
            "AutoScalingGroupName": name,
            "MinSize": 0,
            "MaxSize": int(p.get("MaxSize", 0)),
            "DesiredCapacity": 0,
            "NewInstancesProtectedFromScaleIn": p.get("NewInstancesProtectedFromScaleIn") in {True, "true"},
            "Tags": [
                {
                    "Key": t["Key"],
                    "Value": str(t["Value"]),
                    "PropagateAtLaunch": t.get("PropagateAtLaunch") in {True, "true"},
                }
                for t in p.get("Tags", [])
            ],
        }
        if subnets:
            args["VPCZoneIdentifier"] = ",".join(subnets) if isinstance(subnets, list) else str(subnets)
        if p.get("AvailabilityZones"):
            args["AvailabilityZones"] = p["AvailabilityZones"]
        if p.get("LaunchTemplate"):
            lt = p["LaunchTemplate"]
            args["LaunchTemplate"] = {
                k: str(v) for k, v in lt.items() if k in {"LaunchTemplateId", "LaunchTemplateName", "Version"}
            }
        policies = [str(x) for x in p.get("TerminationPolicies", [])]
        if policies:
            args["TerminationPolicies"] = policies
        for key in ("HealthCheckType", "HealthCheckGracePeriod", "DefaultCooldown"):
            if key in p:
                args[key] = int(p[key]) if key != "HealthCheckType" else p[key]
        if "Cooldown" in p:
            args["DefaultCooldown"] = int(p["Cooldown"])
        self.client("autoscaling").create_auto_scaling_group(**args)
        policy_fn = None
        if policies and policies[0].startswith("arn:aws:lambda:") and not policies[0].endswith(":$LATEST"):
            policy_fn = self._function_of(policies[0])
            if policy_fn is None:
                policy_fn = self._function_by_arn_lazy(policies[0])
        retention = ((p.get("InstanceLifecyclePolicy") or {}).get("RetentionTriggers") or {}).get(
            "TerminateHookAbandon"
        )
        distribution = (p.get("AvailabilityZoneDistribution") or {}).get("CapacityDistributionStrategy")
        lifetime = p.get("MaxInstanceLifetime")
        self.engine.manage(
            GroupConfig(
                name=name,
                policy_function=policy_fn,
                retain_on_terminate_abandon=retention == "retain",
                balanced_only=distribution == "balanced-only",
                max_instance_lifetime=int(lifetime) if lifetime else None,
            )
        )
        for spec in p.get("LifecycleHookSpecificationList", []) or []:
            self.engine.put_hook(
                HookSpec(
                    group=name,
                    name=spec["LifecycleHookName"],
                    transition=spec["LifecycleTransition"],
                    heartbeat_timeout=int(spec.get("HeartbeatTimeout", 3600)),
                    default_result=spec.get("DefaultResult", "ABANDON"),
                    metadata=spec.get("NotificationMetadata"),
                )
            )
        g = self.engine.group(name)
        g.min_size = int(p.get("MinSize", 0))
        g.max_size = int(p.get("MaxSize", 0))
        desired = p.get("DesiredCapacity")
        g.set_desired_capacity(int(desired) if desired is not None else g.min_size)
        self.groups[lid] = name
        return {"Ref": name, "Arn": g.arn}

    def _function_by_arn_lazy(self, arn: str) -> str | None:
        """A policy ARN naming a function not created yet: find it by resolving every function."""
        for lid, res in self.t.resources.items():
            if res.get("Type") == "AWS::Lambda::Function":
                self.ensure(lid)
        return self._function_of(arn)

    def _hook(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        group = str(p["AutoScalingGroupName"])
        name = self._name(lid, p.get("LifecycleHookName"), limit=255)
        self.engine.put_hook(
            HookSpec(
                group=group,
                name=name,
                transition=str(p.get("LifecycleTransition", LAUNCHING)),
                heartbeat_timeout=int(p.get("HeartbeatTimeout", 3600)),
                default_result=str(p.get("DefaultResult", "ABANDON")),
                metadata=p.get("NotificationMetadata"),
            )
        )
        return {"Ref": name}

    def _warm_pool(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        """AWS::AutoScaling::WarmPool: moto stores it; the group's events get Origin/Destination."""
        p = self.props(raw)
        group = str(p["AutoScalingGroupName"])
        args: dict[str, Any] = {"AutoScalingGroupName": group}
        for key in ("MinSize", "MaxGroupPreparedCapacity"):
            if key in p:
                args[key] = int(p[key])
        if "PoolState" in p:
            args["PoolState"] = p["PoolState"]
        self.client("autoscaling").put_warm_pool(**args)
        if self.engine.manages(group):
            self.engine.groups[group].warm_pool = True
        return {"Ref": f"{group}-warm-pool"}

    def _function(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        name = self._name(lid, p.get("FunctionName"))
        arn = f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
        env = {k: _env_str(v) for k, v in ((p.get("Environment") or {}).get("Variables") or {}).items()}
        code = p.get("Code") or {}
        code_dir = self.t.code_dirs.get(lid)
        if code_dir is None and code.get("S3Bucket") == "localcloud":
            code_dir = (self.t.path.parent / str(code.get("S3Key"))).resolve()
        self.functions[lid] = FunctionSpec(
            logical_id=lid,
            name=name,
            arn=arn,
            handler=str(p.get("Handler", "app.lambda_handler")),
            code_dir=code_dir,
            env=env,
            timeout=int(p.get("Timeout", 3)),
            dlq=(p.get("DeadLetterConfig") or {}).get("TargetArn"),
        )
        return {"Ref": name, "Arn": arn}

    def _alias(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        fn = str(p["FunctionName"])
        base = fn if fn.startswith("arn:") else f"arn:aws:lambda:{self.region}:{self.account}:function:{fn}"
        return {"Ref": f"{base}:{p['Name']}", "Arn": f"{base}:{p['Name']}"}

    def _version(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        fn = str(p["FunctionName"])
        base = fn if fn.startswith("arn:") else f"arn:aws:lambda:{self.region}:{self.account}:function:{fn}"
        return {"Ref": f"{base}:1", "Version": "1"}

    def _permission(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        self.permissions.append(
            PermissionSpec(str(p["FunctionName"]), str(p["Principal"]), p.get("SourceArn"))
        )
        return {"Ref": f"{self.stack_name}-{lid}"}

    def _invoke_config(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        self.invoke_configs.append(self.props(raw))
        return {"Ref": f"{self.stack_name}-{lid}"}

    def _rule(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = self.props(raw)
        name = self._name(lid, p.get("Name"))
        arn = f"arn:aws:events:{self.region}:{self.account}:rule/{name}"
        pattern = p.get("EventPattern")
        if isinstance(pattern, str):
            pattern = json.loads(pattern)
        targets: list[TargetSpec] = []
        for t in p.get("Targets", []):
            targets.append(
                TargetSpec(
                    id=str(t.get("Id", "")),
                    arn=str(t["Arn"]),
                    function=None,
                    dead_letter_arn=(t.get("DeadLetterConfig") or {}).get("Arn"),
                    retry_policy=t.get("RetryPolicy"),
                )
            )
        args: dict[str, Any] = {"Name": name, "State": p.get("State", "ENABLED")}
        if pattern:
            args["EventPattern"] = json.dumps(pattern)
        if p.get("ScheduleExpression"):
            args["ScheduleExpression"] = p["ScheduleExpression"]
        self.client("events").put_rule(**args)
        self.rules.append(
            RuleSpec(
                lid,
                name,
                arn,
                pattern,
                p.get("ScheduleExpression"),
                p.get("State", "ENABLED") == "ENABLED",
                targets,
            )
        )
        return {"Ref": name, "Arn": arn}

    def _schedule(self, lid: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        """AWS::Scheduler::Schedule (SAM ScheduleV2): a schedule with one target."""
        p = self.props(raw)
        name = self._name(lid, p.get("Name"))
        arn = f"arn:aws:scheduler:{self.region}:{self.account}:schedule/default/{name}"
        target = p.get("Target") or {}
        self.rules.append(
            RuleSpec(
                lid,
                name,
                arn,
                None,
                p.get("ScheduleExpression"),
                p.get("State", "ENABLED") == "ENABLED",
                [TargetSpec(id="0", arn=str(target.get("Arn", "")), function=None)],
            )
        )
        return {"Ref": name, "Arn": arn}

    def link(self) -> None:
        """Resolve rule targets to functions once every function exists."""
        for rule in self.rules:
            for t in rule.targets:
                t.function = self._function_of(t.arn)


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


_CREATORS: dict[str, Callable[[Provisioner, str, Mapping[str, Any]], dict[str, Any]]] = {
    "AWS::KMS::Key": Provisioner._kms_key,
    "AWS::KMS::Alias": Provisioner._kms_alias,
    "AWS::DynamoDB::Table": Provisioner._table,
    "AWS::SQS::Queue": Provisioner._queue,
    "AWS::SecretsManager::Secret": Provisioner._secret,
    "AWS::SecretsManager::RotationSchedule": Provisioner._rotation,
    "AWS::IAM::Role": Provisioner._role,
    "AWS::IAM::InstanceProfile": Provisioner._instance_profile,
    "AWS::EC2::LaunchTemplate": Provisioner._launch_template,
    "AWS::EC2::SecurityGroup": Provisioner._security_group,
    "AWS::AutoScaling::AutoScalingGroup": Provisioner._group,
    "AWS::AutoScaling::LifecycleHook": Provisioner._hook,
    "AWS::AutoScaling::WarmPool": Provisioner._warm_pool,
    "AWS::Lambda::Function": Provisioner._function,
    "AWS::Lambda::Alias": Provisioner._alias,
    "AWS::Lambda::Version": Provisioner._version,
    "AWS::Lambda::Permission": Provisioner._permission,
    "AWS::Lambda::EventInvokeConfig": Provisioner._invoke_config,
    "AWS::Events::Rule": Provisioner._rule,
    "AWS::Scheduler::Schedule": Provisioner._schedule,
}
