"""Provisioning from template.yaml (the real one and small fixtures), intrinsic resolution, and the join
path end to end: the real on_launch handler, the real boto3 adapters, moto, SimSwarm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.localcloud.fixtures.engine_kit import TEMPLATE, Recorder, engine_cloud

from autojoin.errors import BadInput
from autojoin.localcloud import LocalCloud, LocalCloudError, TemplateError
from autojoin.localcloud.motopatch import engine_for
from autojoin.localcloud.template import NO_VALUE, Resolver, load_template


def _real() -> LocalCloud:
    if not TEMPLATE.exists():
        pytest.fail(f"{TEMPLATE} is missing: the local cloud provisions from it")
    return LocalCloud(template=TEMPLATE, seed=0)


def test_template_yaml_provisions_what_docs_wiring_md_names() -> None:
    with _real() as cloud:
        stack = cloud.provision(cluster="demo", heartbeat_timeout=600)
        assert (stack.manager_group, stack.worker_group) == ("autojoin-demo-manager", "autojoin-demo-worker")
        iam = cloud.session.client("iam")
        env = stack.env["OnLaunchFunction"]
        role_ids = {
            lid: iam.get_role(RoleName=stack.physical[lid]["Ref"])["Role"]["RoleId"]
            for lid in ("ManagerInstanceRole", "WorkerInstanceRole")
        }
        assert env["AUTOJOIN_MANAGER_INSTANCE_ROLE_ID"] == role_ids["ManagerInstanceRole"]
        assert env["AUTOJOIN_WORKER_INSTANCE_ROLE_ID"] == role_ids["WorkerInstanceRole"]
        assert env["AUTOJOIN_CLUSTER"] == "demo"
        assert env["AUTOJOIN_TOKEN_MAX_AGE"] == "300"
        assert env["AUTOJOIN_STATE_TABLE"] == stack.physical["StateTable"]["Ref"]
        assert env["AUTOJOIN_HANDOFF_TABLE"] == stack.physical["HandoffTable"]["Ref"]
        assert env["AUTOJOIN_MANAGER_SECRET_ARN"] == stack.physical["ManagerTokenSecret"]["Ref"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "autojoin"
        assert "AUTOJOIN_HANDOFF_TABLE" not in stack.env["RotateTokensFunction"]
        ddb = cloud.session.client("dynamodb")
        state = ddb.describe_table(TableName=env["AUTOJOIN_STATE_TABLE"])["Table"]
        assert {(k["AttributeName"], k["KeyType"]) for k in state["KeySchema"]} == {
            ("pk", "HASH"),
            ("sk", "RANGE"),
        }
        ttl = ddb.describe_time_to_live(TableName=env["AUTOJOIN_HANDOFF_TABLE"])["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "expires_at"
        sm = cloud.session.client("secretsmanager")
        described = sm.describe_secret(SecretId=env["AUTOJOIN_WORKER_SECRET_ARN"])
        assert described["KmsKeyId"] == stack.physical["AutojoinKey"]["Arn"]
        with pytest.raises(sm.exceptions.ResourceNotFoundException):
            sm.get_secret_value(SecretId=env["AUTOJOIN_WORKER_SECRET_ARN"])  # empty until the first manager
        asg = cloud.session.client("autoscaling")
        hooks = asg.describe_lifecycle_hooks(AutoScalingGroupName=stack.manager_group)["LifecycleHooks"]
        # launch: ABANDON terminates an instance that never joined; terminate: ABANDON retains a manager
        # the guard could not remove safely (the group's TerminateHookAbandon retention)
        assert sorted((h["LifecycleHookName"], h["HeartbeatTimeout"], h["DefaultResult"]) for h in hooks) == [
            ("autojoin-launch", 600, "ABANDON"),
            ("autojoin-terminate", 900, "ABANDON"),
        ]
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[stack.manager_group])[
            "AutoScalingGroups"
        ][0]
        assert {t["Key"]: t["Value"] for t in group["Tags"]}["autojoin:role"] == "manager"
        assert sorted(group["AvailabilityZones"]) == list(cloud.zones)
        assert group["NewInstancesProtectedFromScaleIn"] is True
        assert cloud.engine.groups[stack.manager_group].balanced_only
        assert (
            stack.rotations[env["AUTOJOIN_MANAGER_SECRET_ARN"]] == stack.functions["RotateTokensFunction"].arn
        )


def test_the_join_path_end_to_end_on_template_yaml() -> None:
    with _real() as cloud:
        stack = cloud.provision(cluster="demo")
        cloud.set_desired(stack.manager_group, 3)
        cloud.set_desired(stack.worker_group, 2)
        cloud.run_until_idle(3600)
        for group, count in ((stack.manager_group, 3), (stack.worker_group, 2)):
            assert [i.lifecycle_state for i in cloud.instances(group)] == ["InService"] * count
        assert sorted(cloud.layout(stack.manager_group).values()) == [1, 1, 1]
        members = {m.instance_id: m.role.value for m in cloud.swarm.members()}
        assert sorted(members.values()) == ["manager"] * 3 + ["worker"] * 2
        assert all(i.outcome == "ok" for i in cloud.invocations)
        assert {r.result for r in cloud.lifecycle_results} == {"CONTINUE"}
        assert {r.by for r in cloud.lifecycle_results} == {"api"}
        assert {r.caller for r in cloud.lifecycle_results} == {"OnLaunchFunction"}
        ops = {(c.service, c.operation) for c in cloud.calls}
        assert ("autoscaling", "CompleteLifecycleAction") in ops
        # the nodes took their own tickets with their own principal
        takes = [
            c for c in cloud.calls if c.operation == "DeleteItem" and str(c.function).startswith("node:")
        ]
        role_id = stack.env["OnLaunchFunction"]["AUTOJOIN_WORKER_INSTANCE_ROLE_ID"]
        worker_ids = [i.instance_id for i in cloud.instances(stack.worker_group)]
        assert {f"{role_id}:{w}" for w in worker_ids} <= {c.params["Key"]["principal"]["S"] for c in takes}
        logged = json.dumps(
            [c.params for c in cloud.calls] + [i.result for i in cloud.invocations], default=str
        )
        assert "SWMTKN" not in logged
        secret = stack.env["OnLaunchFunction"]["AUTOJOIN_MANAGER_SECRET_ARN"]
        value = cloud.session.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
        assert value.startswith("SWMTKN-1-")  # stored by the first manager's node side


def test_a_launch_of_a_group_the_rule_does_not_name_reaches_no_function() -> None:
    with _real() as cloud:
        stack = cloud.provision(cluster="demo")
        cloud.deliver(
            {
                "version": "0",
                "id": "x",
                "source": "aws.autoscaling",
                "detail-type": "EC2 Instance-launch Lifecycle Action",
                "detail": {"AutoScalingGroupName": "other-manager", "EC2InstanceId": "i-1"},
            }
        )
        cloud.run_until_idle(0)
        assert cloud.invocations == []
        assert cloud.deliveries[-1].functions == ()
        assert stack.rules  # the template has rules: this one simply did not match


def test_the_swarm_sees_crashes_and_terminations() -> None:
    with _real() as cloud:
        stack = cloud.provision(cluster="demo")
        cloud.set_desired(stack.manager_group, 3)
        cloud.run_until_idle(600)
        victim = cloud.instances(stack.manager_group)[0].instance_id
        cloud.crash_instance(victim)
        assert not cloud.swarm.is_up(victim)


def test_rotate_secret_runs_the_four_steps_of_the_templates_rotation_function() -> None:
    with _real() as cloud:
        stack = cloud.provision(cluster="demo")
        steps = Recorder(lambda e: None)
        cloud.register_handler("RotateTokensFunction", steps)
        version = cloud.rotate_secret("ManagerTokenSecret")
        assert [e["Step"] for e in steps.events] == [
            "createSecret",
            "setSecret",
            "testSecret",
            "finishSecret",
        ]
        assert {e["ClientRequestToken"] for e in steps.events} == {version}
        assert {e["SecretId"] for e in steps.events} == {stack.physical["ManagerTokenSecret"]["Ref"]}
        with pytest.raises(LocalCloudError, match="no rotation"):
            cloud.rotate_secret("StateTable")


def test_lifecycle_without_the_cloud_open_or_provisioned_is_an_error() -> None:
    cloud = LocalCloud(template=TEMPLATE)
    with pytest.raises(LocalCloudError, match="not open"):
        cloud.provision()
    with LocalCloud(template=TEMPLATE) as opened:
        with pytest.raises(LocalCloudError, match="provision"):
            _ = opened.stack
        with pytest.raises(LocalCloudError, match="unknown orchestrator"):
            LocalCloud(template=TEMPLATE, orchestrator="docker").orchestrator  # noqa: B018
    outsider = object()
    assert LocalCloud(template=TEMPLATE, orchestrator=outsider).orchestrator is outsider
    with pytest.raises(LocalCloudError, match="only with"):
        LocalCloud(template=TEMPLATE, orchestrator=outsider).swarm  # noqa: B018


def test_closing_the_cloud_restores_moto() -> None:
    from moto.autoscaling.responses import AutoScalingResponse

    with engine_cloud() as (cloud, _stack):
        assert engine_for(cloud.account, cloud.region) is cloud.engine
        assert hasattr(AutoScalingResponse, "complete_lifecycle_action")
    assert engine_for(cloud.account, cloud.region) is None
    assert not hasattr(AutoScalingResponse, "complete_lifecycle_action")


def test_groups_the_engine_does_not_manage_keep_motos_behaviour() -> None:
    with engine_cloud() as (cloud, stack):
        asg = cloud.session.client("autoscaling")
        lt = stack.physical["WorkerLaunchTemplate"]["Ref"]
        asg.create_auto_scaling_group(
            AutoScalingGroupName="plain",
            MinSize=0,
            MaxSize=3,
            DesiredCapacity=2,
            LaunchTemplate={"LaunchTemplateId": lt},
            AvailabilityZones=["us-east-1a"],
        )
        plain = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["plain"])["AutoScalingGroups"][0]
        assert [i["LifecycleState"] for i in plain["Instances"]] == ["InService", "InService"]
        first = plain["Instances"][0]["InstanceId"]
        asg.terminate_instance_in_auto_scaling_group(InstanceId=first, ShouldDecrementDesiredCapacity=True)
        cloud.session.client("ec2").terminate_instances(InstanceIds=[plain["Instances"][1]["InstanceId"]])
        cloud.register_handler("OnLaunchFunction", Recorder())
        cloud.set_desired(stack.worker_group, 1)
        cloud.run_until_idle(0)  # one worker waits in Pending:Wait
        asg.delete_auto_scaling_group(AutoScalingGroupName=stack.worker_group, ForceDelete=True)
        assert not cloud.engine.manages(stack.worker_group)
        assert cloud.run_until_idle(7200) <= 60  # its hook timers went with it
        assert cloud.lifecycle_results == []


# --- template loading and intrinsics ------------------------------------------------------------


def _resolver(cfn: dict[str, Any], **params: Any) -> Resolver:
    return Resolver(
        cfn,
        params,
        {"AWS::Region": "us-east-1", "AWS::StackName": "s"},
        lambda lid, att: f"{lid}.{att}",
        ("us-east-1a", "us-east-1b"),
    )


def test_intrinsics_resolve_like_cloudformation() -> None:
    cfn = {
        "Resources": {"Thing": {"Type": "X"}},
        "Conditions": {
            "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
            "Not": {"Fn::Not": [{"Condition": "IsProd"}]},
        },
        "Mappings": {"Sizes": {"prod": {"n": 3}}},
    }
    r = _resolver(cfn, Env="prod", Subnets=["a", "b"])
    assert r.resolve({"Ref": "Thing"}) == "Thing.Ref"
    assert r.resolve({"Fn::GetAtt": "Thing.Arn"}) == "Thing.Arn"
    assert r.resolve({"Fn::GetAtt": ["Thing", "RoleId"]}) == "Thing.RoleId"
    assert (
        r.resolve({"Fn::Sub": "${AWS::StackName}-${Env}-${Thing.Arn}-${!Literal}"})
        == "s-prod-Thing.Arn-${Literal}"
    )
    assert r.resolve({"Fn::Sub": ["${A}/${Thing}", {"A": {"Ref": "Env"}}]}) == "prod/Thing.Ref"
    assert r.resolve({"Fn::Join": [",", {"Ref": "Subnets"}]}) == "a,b"
    assert r.resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y"]}]}) == "y"
    assert r.resolve({"Fn::If": ["IsProd", 1, 2]}) == 1
    assert r.resolve({"Fn::If": ["Not", 1, {"Ref": "AWS::NoValue"}]}) is NO_VALUE
    assert r.resolve(
        {"a": {"Fn::If": ["Not", 1, {"Ref": "AWS::NoValue"}]}, "b": [1, {"Ref": "AWS::NoValue"}]}
    ) == {"b": [1]}
    assert r.resolve({"Fn::And": [True, {"Fn::Or": [False, True]}]}) is True
    assert r.resolve({"Fn::Base64": "hi"}) == "aGk="
    assert r.resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "n"]}) == 3
    assert r.resolve({"Fn::GetAZs": ""}) == ["us-east-1a", "us-east-1b"]
    assert r.resolve({"Ref": "AWS::Region"}) == "us-east-1"
    with pytest.raises(TemplateError, match="ImportValue"):
        r.resolve({"Fn::ImportValue": "x"})
    with pytest.raises(TemplateError, match="unknown name"):
        r.resolve({"Ref": "Nope"})
    with pytest.raises(TemplateError, match="unknown condition"):
        r.condition("Nope")


def test_template_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read"):
        load_template(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: text\n")
    with pytest.raises(TemplateError, match="no Resources"):
        load_template(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  F:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: f/, Runtime: python3.12}\n"
    )
    with pytest.raises(TemplateError, match="SAM transform failed"):
        load_template(broken)


def test_plain_cloudformation_templates_load_without_the_sam_transform(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(
        "Parameters:\n  Name: {Type: String}\n"
        "Conditions:\n  Never: {'Fn::Equals': [a, b]}\n"
        "Resources:\n"
        "  Q: {Type: AWS::SQS::Queue, Properties: {QueueName: !Ref Name, FifoQueue: true}}\n"
        "  Skipped: {Type: AWS::SQS::Queue, Condition: Never}\n"
        "  Topic: {Type: AWS::SNS::Topic}\n"
        "  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: d}}\n"
        "  Fn:\n    Type: AWS::Lambda::Function\n"
        "    Properties: {Handler: app.lambda_handler, Code: {ZipFile: x}, Runtime: python3.12}\n"
        "  Live: {Type: AWS::Lambda::Alias, Properties: {FunctionName: !Ref Fn, Name: live}}\n"
        "  V1: {Type: AWS::Lambda::Version, Properties: {FunctionName: !GetAtt Fn.Arn}}\n"
        "  Every: {Type: AWS::Scheduler::Schedule, Properties: {ScheduleExpression: rate(1 hour),"
        " Target: {Arn: !Ref Live}}}\n"
        '  Hourly: {Type: AWS::Events::Rule, Properties: {ScheduleExpression: "cron(0 * * * ? *)",'
        " Targets: [{Id: a, Arn: !GetAtt Fn.Arn}]}}\n"
        "  Lt: {Type: AWS::EC2::LaunchTemplate, Properties: {LaunchTemplateData: {InstanceType: t3.nano}}}\n"
        "  Asg:\n    Type: AWS::AutoScaling::AutoScalingGroup\n    Properties:\n"
        "      AvailabilityZones: [us-east-1a]\n      MinSize: 0\n      MaxSize: 2\n"
        "      LaunchTemplate: {LaunchTemplateId: !Ref Lt}\n"
        "      TerminationPolicies: [OldestInstance]\n      HealthCheckGracePeriod: 60\n      Cooldown: 30\n"
        "  Pool: {Type: AWS::AutoScaling::WarmPool, Properties: {AutoScalingGroupName: !Ref Asg, MinSize: 1,"
        " PoolState: Stopped}}\n"
        "  Table:\n    Type: AWS::DynamoDB::Table\n    Properties:\n"
        "      AttributeDefinitions: [{AttributeName: k, AttributeType: S}]\n"
        "      KeySchema: [{AttributeName: k, KeyType: HASH}]\n"
    )
    with LocalCloud(template=plain, seed=1) as cloud:
        with pytest.raises(TemplateError, match="Name has no value"):
            cloud.provision()
        stack = cloud.provision(params={"Name": "jobs"}, stack_name="plain")
        assert stack.physical["Q"]["QueueName"] == "jobs.fifo"
        assert stack.physical["Topic"]["Ref"] == "plain-Topic"
        assert stack.physical["Live"]["Ref"] == stack.functions["Fn"].arn + ":live"
        assert stack.function_for_arn(stack.physical["V1"]["Ref"]) == "Fn"
        assert stack.functions["Fn"].code_dir is None
        assert (stack.manager_group, stack.worker_group) == ("", "")  # no autojoin:role tags
        group = stack.physical["Asg"]["Ref"]
        assert cloud.engine.groups[group].warm_pool
        assert cloud.engine.groups[group].policy_function is None
        assert cloud.engine.group(group).termination_policies == ["OldestInstance"]
        with pytest.raises(LocalCloudError, match="no local code"):
            cloud.invoke("Fn", {})
        cloud.register_handler("Fn", lambda event, context, deps: None)
        with pytest.raises(BadInput, match="AUTOJOIN_CLUSTER"):  # no settings in its env: an init error
            cloud.invoke("Fn", {})
        assert cloud.invocations[-1].error_type == "BadInput"
        ticks = Recorder()
        cloud.register_handler("Fn", ticks)
        assert cloud.enable_schedules() == 1  # rate() only: cron is not simulated
        cloud.advance(3600)
        assert [e["source"] for e in ticks.events] == ["aws.scheduler"]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            "  Q: {Type: AWS::SQS::Queue, Properties: {QueueName: !GetAtt Q2.Nope}}\n"
            "  Q2: {Type: AWS::SQS::Queue}\n",
            "Q2 has no attribute Nope",
        ),
        (
            "  A: {Type: AWS::SQS::Queue, Properties: {QueueName: !GetAtt B.QueueName}}\n"
            "  B: {Type: AWS::SQS::Queue, Properties: {QueueName: !GetAtt A.QueueName}}\n",
            "circular",
        ),
        ("  A: {Type: AWS::SQS::Queue, DependsOn: Ghost}\n", "no resource Ghost"),
    ],
)
def test_unresolvable_templates_fail_clearly(tmp_path: Path, resources: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("Resources:\n" + resources)
    with LocalCloud(template=path) as cloud, pytest.raises(TemplateError, match=message):
        cloud.provision()


def _join_path_run(seed: int) -> tuple[list[Any], list[Any], list[Any]]:
    with LocalCloud(template=TEMPLATE, seed=seed) as cloud:
        stack = cloud.provision(cluster="demo")
        cloud.set_desired(stack.worker_group, 2)  # workers first: they wait for the first manager
        cloud.run_until_idle(600)
        cloud.set_desired(stack.manager_group, 3)
        cloud.run_until_idle(3600)
        events = [
            (e["time"], e["id"], e["detail-type"], e["detail"].get("EC2InstanceId")) for e in cloud.events
        ]
        calls = [(c.at, c.service, c.operation, c.function) for c in cloud.calls]
        nodes = sorted((n["node_id"], n["instance_id"], n["role"]) for n in cloud.swarm.snapshot())
        return events, calls, nodes


def test_the_same_seed_replays_the_join_path_identically() -> None:
    first, again = _join_path_run(11), _join_path_run(11)
    assert first == again
    events, calls, nodes = first
    assert len(nodes) == 5 and len(events) >= 10 and calls
    assert _join_path_run(12)[2] != nodes
