"""The boto3 adapters against moto (happy paths) and botocore's Stubber (error paths only)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from pydantic import SecretStr

from autojoin.adapters.aws.fleet import AsgFleet
from autojoin.adapters.aws.handoff import DynamoHandOff, principal
from autojoin.adapters.aws.state import DynamoStateStore
from autojoin.adapters.aws.tokens import SecretsManagerTokenVault
from autojoin.domain.model import ClusterView, LifecycleAction, LifecycleKind, LifecycleResult, Node, Role
from autojoin.errors import NotFound, SecretMissing, TransientAwsError
from autojoin.ports import CompletionOutcome, JoinTicket

REGION = "us-east-1"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FAKE_TOKEN = "SWMTKN-1-" + "a" * 50 + "-" + "b" * 25


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def _tables(session: boto3.Session) -> None:
    db = session.client("dynamodb")
    db.create_table(
        TableName="state",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    db.create_table(
        TableName="handoff",
        KeySchema=[{"AttributeName": "principal", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "principal", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_state_store_bootstrap_claim_is_exclusive(aws: boto3.Session) -> None:
    _tables(aws)
    store = DynamoStateStore(aws.client("dynamodb"), "state", lambda: NOW)
    assert store.claim_bootstrap("demo", "i-1") is True
    assert store.claim_bootstrap("demo", "i-2") is False
    assert store.claim_bootstrap("demo", "i-1") is True  # the winner's own retry
    assert store.bootstrap_owner("demo") == "i-1" and not store.is_bootstrapped("demo")
    store.release_bootstrap("demo", "i-2")  # not the owner: no effect
    assert store.bootstrap_owner("demo") == "i-1"
    store.mark_bootstrapped("demo", "i-1")
    store.release_bootstrap("demo", "i-1")  # done: cannot be released any more
    assert store.is_bootstrapped("demo") and store.bootstrap_owner("demo") == "i-1"


def test_state_store_release_lets_another_claim(aws: boto3.Session) -> None:
    _tables(aws)
    store = DynamoStateStore(aws.client("dynamodb"), "state", lambda: NOW)
    assert store.claim_bootstrap("demo", "i-1")
    store.release_bootstrap("demo", "i-1")
    assert store.claim_bootstrap("demo", "i-2")


def test_state_store_lease_expires(aws: boto3.Session) -> None:
    _tables(aws)
    clock = {"now": NOW}
    store = DynamoStateStore(aws.client("dynamodb"), "state", lambda: clock["now"])
    assert store.acquire_lease("demo", "a", 60)
    assert not store.acquire_lease("demo", "b", 60)
    assert store.acquire_lease("demo", "a", 60)  # re-entrant for its holder
    clock["now"] = datetime(2026, 1, 1, 0, 2, tzinfo=UTC)
    assert store.acquire_lease("demo", "b", 60)  # a crashed holder cannot wedge the cluster
    store.release_lease("demo", "a")  # not the holder: no effect
    assert not store.acquire_lease("demo", "a", 60)
    store.release_lease("demo", "b")
    assert store.acquire_lease("demo", "a", 60)


def test_state_store_snapshot_and_pending_round_trip(aws: boto3.Session) -> None:
    _tables(aws)
    store = DynamoStateStore(aws.client("dynamodb"), "state", lambda: NOW)
    assert store.snapshot("demo") is None
    view = ClusterView(
        cluster="demo", nodes=(Node(instance_id="i-1", role=Role.MANAGER, az="a"),), zones=("a", "b")
    )
    store.save_snapshot(view)
    assert store.snapshot("demo") == view
    action = LifecycleAction(kind=LifecycleKind.LAUNCHING, group="g", instance_id="i-9", hook="h", token="t")
    store.add_pending("demo", action, Role.WORKER)
    store.add_pending("demo", action, Role.WORKER)  # idempotent
    assert store.pending("demo") == [(action, Role.WORKER)]
    store.remove_pending("demo", "i-9")
    assert store.pending("demo") == []


def test_handoff_row_is_keyed_by_the_instance_principal_and_withdrawn(aws: boto3.Session) -> None:
    _tables(aws)
    db = aws.client("dynamodb")
    handoff = DynamoHandOff(db, "handoff", {Role.MANAGER: "AROAMGR", Role.WORKER: "AROAWRK"}, lambda: NOW)
    ticket = JoinTicket(Role.WORKER, SecretStr(FAKE_TOKEN), ("10.0.0.1:2377",), "demo")
    handoff.offer("i-1", ticket, 900)
    item = db.get_item(TableName="handoff", Key={"principal": {"S": principal("AROAWRK", "i-1")}})["Item"]
    assert item["role"]["S"] == "worker" and item["managers"]["L"] == [{"S": "10.0.0.1:2377"}]
    assert int(item["expires_at"]["N"]) == int(NOW.timestamp()) + 900
    assert "Item" not in db.get_item(
        TableName="handoff", Key={"principal": {"S": principal("AROAMGR", "i-1")}}
    )
    handoff.withdraw("i-1")
    assert db.scan(TableName="handoff")["Count"] == 0
    handoff.withdraw("i-2")  # never offered: deletes nothing, fails nothing
    assert "FAKE" not in repr(ticket) and FAKE_TOKEN not in repr(ticket)


def test_vault_reads_each_token_once_per_max_age_and_refresh_prefers_pending(aws: boto3.Session) -> None:
    sm = aws.client("secretsmanager")
    arn = sm.create_secret(Name="worker-token")["ARN"]
    sm.put_secret_value(SecretId=arn, SecretString=FAKE_TOKEN)
    reads: list[str] = []
    sm.meta.events.register("before-call.secrets-manager.GetSecretValue", lambda **kw: reads.append("get"))
    vault = SecretsManagerTokenVault(sm, {Role.WORKER: arn}, max_age=300)
    for _ in range(50):
        assert vault.token(Role.WORKER).get_secret_value() == FAKE_TOKEN
    assert len(reads) == 1
    assert vault.has_token(Role.WORKER)
    new = "SWMTKN-1-" + "a" * 50 + "-" + "c" * 25
    sm.put_secret_value(
        SecretId=arn, SecretString=new, ClientRequestToken="v" * 32, VersionStages=["AWSPENDING"]
    )
    assert vault.pending(Role.WORKER, "v" * 32) == SecretStr(new)
    assert vault.token(Role.WORKER, refresh=True).get_secret_value() == new
    assert vault.stages(Role.WORKER, "v" * 32) == ("AWSPENDING",)
    vault.promote_pending(Role.WORKER, "v" * 32)
    assert "AWSCURRENT" in vault.stages(Role.WORKER, "v" * 32)
    vault.promote_pending(Role.WORKER, "v" * 32)  # already current: no-op
    assert vault.token(Role.WORKER, refresh=True).get_secret_value() == new


def test_finish_takes_awspending_off_so_pending_reads_no_longer_answer(aws: boto3.Session) -> None:
    sm = aws.client("secretsmanager")
    arn = sm.create_secret(Name="worker-token")["ARN"]
    vault = SecretsManagerTokenVault(sm, {Role.WORKER: arn}, max_age=0)
    assert vault.current_token(Role.WORKER) is None  # created empty: no version at all
    sm.put_secret_value(SecretId=arn, SecretString=FAKE_TOKEN)
    new = "SWMTKN-1-" + "a" * 50 + "-" + "c" * 25
    version = "v" * 32
    sm.put_secret_value(
        SecretId=arn, SecretString=new, ClientRequestToken=version, VersionStages=["AWSPENDING"]
    )
    vault.promote_pending(Role.WORKER, version)
    assert vault.stages(Role.WORKER, version) == ("AWSCURRENT",)
    assert vault.pending(Role.WORKER, version) is None
    with pytest.raises(ClientError):  # an "AWSPENDING-only" read (a manager's) finds nothing any more
        sm.get_secret_value(SecretId=arn, VersionStage="AWSPENDING")
    assert vault.current_token(Role.WORKER) == SecretStr(new)
    # a stale pending version is dropped (testSecret's re-sync)
    stale = "s" * 32
    sm.put_secret_value(
        SecretId=arn, SecretString=FAKE_TOKEN, ClientRequestToken=stale, VersionStages=["AWSPENDING"]
    )
    vault.drop_pending(Role.WORKER, stale)
    assert vault.stages(Role.WORKER, stale) == () and vault.pending(Role.WORKER, stale) is None
    vault.drop_pending(Role.WORKER, stale)  # nothing pending: nothing to do


def test_vault_missing_secret_or_value(aws: boto3.Session) -> None:
    sm = aws.client("secretsmanager")
    arn = sm.create_secret(Name="manager-token")["ARN"]  # no value yet
    vault = SecretsManagerTokenVault(sm, {Role.MANAGER: arn})
    assert not vault.has_token(Role.MANAGER)
    with pytest.raises(SecretMissing):
        vault.token(Role.MANAGER)
    with pytest.raises(SecretMissing):
        vault.token(Role.WORKER)  # no secret configured for the role
    gone = SecretsManagerTokenVault(
        sm, {Role.MANAGER: "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope"}
    )
    assert not gone.has_token(Role.MANAGER)


def _asg(session: boto3.Session, name: str, tags: dict[str, str]) -> None:
    ec2 = session.client("ec2")
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    session.client("ec2").create_launch_template(
        LaunchTemplateName=f"lt-{name}", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.small"}
    )
    session.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"lt-{name}"},
        MinSize=0,
        MaxSize=5,
        DesiredCapacity=1,
        AvailabilityZones=["us-east-1a", "us-east-1b"],
        Tags=[
            {
                "Key": k,
                "Value": v,
                "PropagateAtLaunch": False,
                "ResourceId": name,
                "ResourceType": "auto-scaling-group",
            }
            for k, v in tags.items()
        ],
    )


def test_fleet_reads_groups_roles_and_instances(aws: boto3.Session) -> None:
    _asg(aws, "mgr", {"autojoin:cluster": "demo", "autojoin:role": "manager"})
    _asg(aws, "plain", {"team": "x"})
    fleet = AsgFleet(aws.client("autoscaling"), aws.client("ec2"))
    g = fleet.group("mgr")
    assert g is not None and (g.cluster, g.role, g.zones) == (
        "demo",
        Role.MANAGER,
        ("us-east-1a", "us-east-1b"),
    )
    plain = fleet.group("plain")
    assert plain is not None and (plain.cluster, plain.role) == (None, None)
    assert fleet.group("missing") is None
    assert [x.name for x in fleet.cluster_groups("demo")] == ["mgr"]
    [inst] = fleet.instances("mgr")
    assert inst.group == "mgr" and inst.az in {"us-east-1a", "us-east-1b"} and inst.private_ip
    again = fleet.instance(inst.instance_id)
    assert again is not None and again.lifecycle_state == "InService" and again.instance_type == "t3.small"
    assert fleet.instance("i-0000000000000dead") is None
    assert fleet.instances("missing") == []
    fleet.set_protection("mgr", [inst.instance_id], True)
    fleet.set_protection("mgr", [], True)
    assert aws.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[inst.instance_id])[
        "AutoScalingInstances"
    ][0]["ProtectedFromScaleIn"]


TOK = "bbbbbbbb-1111-2222-3333-444444444444"
ACTION = LifecycleAction(kind=LifecycleKind.LAUNCHING, group="g", instance_id="i-1", hook="h", token=TOK)


def _stubbed() -> tuple[AsgFleet, Stubber]:
    client = boto3.client("autoscaling", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.activate()
    return AsgFleet(
        client, boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    ), stub


def _expected(**extra: Any) -> dict[str, Any]:
    return {"LifecycleHookName": "h", "AutoScalingGroupName": "g", **extra}


def test_complete_treats_no_active_action_as_already_done() -> None:
    fleet, stub = _stubbed()
    stub.add_response(
        "complete_lifecycle_action", {}, _expected(LifecycleActionResult="CONTINUE", LifecycleActionToken=TOK)
    )
    stub.add_client_error(
        "complete_lifecycle_action",
        "ValidationError",
        "No active Lifecycle Action found with instance ID i-1",
        http_status_code=400,
    )
    assert fleet.complete(ACTION, LifecycleResult.CONTINUE) is CompletionOutcome.COMPLETED
    assert fleet.complete(ACTION, LifecycleResult.CONTINUE) is CompletionOutcome.ALREADY_DONE


def test_complete_by_instance_id_without_token_and_contention_is_transient() -> None:
    fleet, stub = _stubbed()
    stub.add_response(
        "complete_lifecycle_action", {}, _expected(LifecycleActionResult="ABANDON", InstanceId="i-1")
    )
    stub.add_client_error("complete_lifecycle_action", "ResourceContention", "busy", http_status_code=500)
    no_token = ACTION.model_copy(update={"token": ""})
    assert fleet.complete(no_token, LifecycleResult.ABANDON) is CompletionOutcome.COMPLETED
    with pytest.raises(TransientAwsError):
        fleet.complete(ACTION, LifecycleResult.ABANDON)


def test_heartbeat_gone_and_other_errors() -> None:
    fleet, stub = _stubbed()
    stub.add_response("record_lifecycle_action_heartbeat", {}, _expected(LifecycleActionToken=TOK))
    stub.add_client_error(
        "record_lifecycle_action_heartbeat",
        "ValidationError",
        "No active Lifecycle Action found",
        http_status_code=400,
    )
    stub.add_client_error(
        "record_lifecycle_action_heartbeat", "Throttling", "slow down", http_status_code=400
    )
    assert fleet.heartbeat(ACTION) is True
    assert fleet.heartbeat(ACTION) is False
    with pytest.raises(TransientAwsError):
        fleet.heartbeat(ACTION)


def test_group_lookup_errors_translate() -> None:
    fleet, stub = _stubbed()
    stub.add_client_error("describe_auto_scaling_groups", "ServiceUnavailable", "down", http_status_code=503)
    stub.add_client_error(
        "describe_auto_scaling_groups", "ResourceNotFoundException", "x", http_status_code=400
    )
    with pytest.raises(TransientAwsError):
        fleet.group("g")
    with pytest.raises(NotFound):
        fleet.group("g")


def test_bootstrap_claim_race_has_exactly_one_winner(aws: boto3.Session) -> None:
    """Managers launched at the same moment race for the claim: the conditional write lets one win."""
    from concurrent.futures import ThreadPoolExecutor

    _tables(aws)
    store = DynamoStateStore(aws.client("dynamodb"), "state", lambda: NOW)
    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(pool.map(lambda i: store.claim_bootstrap("demo", f"i-{i}"), range(16)))
    assert wins.count(True) == 1
    assert store.bootstrap_owner("demo") == f"i-{wins.index(True)}"


def test_lease_holder_expiry_and_bad_arguments(aws: boto3.Session) -> None:
    _tables(aws)
    clock = {"now": NOW}
    store = DynamoStateStore(aws.client("dynamodb"), "state", lambda: clock["now"])
    assert store.lease_holder("demo") is None
    assert store.acquire_lease("demo", "terminate:i-1:req", 60)
    assert store.lease_holder("demo") == "terminate:i-1:req"
    clock["now"] = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)  # exactly at expiry: free
    assert store.lease_holder("demo") is None
    assert store.acquire_lease("demo", "guard:req", 60)
    with pytest.raises(ValueError, match="ttl"):
        store.acquire_lease("demo", "x", 0)
    with pytest.raises(ValueError, match="holder"):
        store.acquire_lease("demo", "", 60)


def test_waiting_removals_keep_when_they_started(aws: boto3.Session) -> None:
    _tables(aws)
    store = DynamoStateStore(aws.client("dynamodb"), "state", lambda: NOW)
    action = LifecycleAction(
        kind=LifecycleKind.TERMINATING, group="g", instance_id="i-9", hook="h", token="t"
    )
    assert store.add_removal("demo", action, NOW) == NOW
    later = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    assert store.add_removal("demo", action, later) == NOW  # the first record wins
    assert store.removals("demo") == [(action, NOW)]
    assert store.pending("demo") == []  # not mixed up with waiting launches
    store.remove_removal("demo", "i-9")
    assert store.removals("demo") == []


def test_a_snapshot_too_big_for_one_item_is_stored_summarised(
    aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    import autojoin.adapters.aws.state as state_module

    _tables(aws)
    monkeypatch.setattr(state_module, "SNAPSHOT_BUDGET", 2000)
    store = DynamoStateStore(aws.client("dynamodb"), "state", lambda: NOW)
    nodes = [Node(instance_id="i-m", role=Role.MANAGER, az="a")]
    nodes += [
        Node(instance_id=f"i-w{k}", role=Role.WORKER, az="ab"[k % 2], available=k != 3) for k in range(40)
    ]
    view = ClusterView(cluster="demo", nodes=tuple(nodes), zones=("a", "b"), taken_at=NOW)
    store.save_snapshot(view)
    got = store.snapshot("demo")
    assert got is not None and not got.workers_listed
    assert got.worker_counts == {"a": 20, "b": 20}
    assert {n.instance_id for n in got.nodes} == {"i-m", "i-w3"}  # managers and the drained worker
    assert got.taken_at == NOW


def test_fleet_read_cluster_agrees_with_the_per_group_reads_and_sees_a_machine_gone(
    aws: boto3.Session,
) -> None:
    """read_cluster (the guard's and the reconciler's one read) gives each cluster group with the same
    instances, zones, lifecycle states and protection as asking group by group, and marks as gone a
    machine that EC2 terminated behind Auto Scaling's back (still InService in its group)."""
    _asg(aws, "mgr", {"autojoin:cluster": "demo", "autojoin:role": "manager"})
    _asg(aws, "wrk", {"autojoin:cluster": "demo", "autojoin:role": "worker"})
    _asg(aws, "other", {"autojoin:cluster": "elsewhere", "autojoin:role": "worker"})
    fleet = AsgFleet(aws.client("autoscaling"), aws.client("ec2"))
    [mgr] = fleet.instances("mgr")
    fleet.set_protection("mgr", [mgr.instance_id], True)
    [wrk] = fleet.instances("wrk")
    # EC2 already shutting the machine down while its group still lists it InService (moto's own
    # TerminateInstances would take it out of the group at once, so the state is set in moto's EC2)
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_instance(wrk.instance_id)._state.name = "shutting-down"

    read = fleet.read_cluster("demo")

    assert [g.name for g in read.groups] == ["mgr", "wrk"]
    assert read.group("other") is None and read.instances("other") == ()
    for name in ("mgr", "wrk"):
        mine = [
            (i.instance_id, i.az, i.group, i.lifecycle_state, i.protected_from_scale_in, i.gone)
            for i in read.instances(name)
        ]
        theirs = [
            (i.instance_id, i.az, i.group, i.lifecycle_state, i.protected_from_scale_in, i.gone)
            for i in fleet.instances(name)
        ]
        assert mine == theirs
    got = read.find(mgr.instance_id)
    assert got is not None and got.protected_from_scale_in and not got.gone
    gone = read.find(wrk.instance_id)
    assert gone is not None and gone.gone and gone.lifecycle_state == "InService"
    assert read.find("i-0000000000000dead") is None
