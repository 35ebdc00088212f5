"""The real Lambda handlers (functions/*/app.py) with injected deps: moto for DynamoDB (state +
idempotency), in-memory fakes for the fleet/vault/hand-off, the SimSwarm as orchestrator.

Everything the handlers print (Powertools logs at DEBUG, EMF metrics) is captured at the file-descriptor
level and searched for tokens."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from tests.fakes import FakeFleet, FakeHandOff, FakeVault

from autojoin.adapters.aws.state import DynamoStateStore
from autojoin.adapters.sim.clock import SimClock
from autojoin.adapters.sim.swarm import SimSwarm
from autojoin.bootstrap import Deps, build_deps
from autojoin.domain.model import ClusterView, LifecycleResult, Node, Role
from autojoin.errors import CommandFailed
from autojoin.observability import logger
from autojoin.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = re.compile(r"SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}")
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
MGR_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:demo-manager-token-AbCdEf"
WRK_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:demo-worker-token-GhIjKl"


def load_handler(folder: str) -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location(f"handler_{folder}", ROOT / "functions" / folder / "app.py")
    assert spec and spec.loader
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler  # type: ignore[no-any-return]


@dataclass
class Context:
    function_name: str = "on_launch"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:on_launch"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class Env:
    deps: Deps
    fleet: FakeFleet
    vault: FakeVault
    handoff: FakeHandOff
    swarm: SimSwarm
    logs: io.StringIO
    n: int = 0

    def event(self, role: Role, az: str, **detail: str) -> dict[str, Any]:
        self.n += 1
        iid = f"i-{self.n:017x}"
        group = "demo-manager" if role is Role.MANAGER else "demo-worker"
        self.fleet.launch(iid, group, az, f"10.0.1.{self.n}")
        return {
            "version": "0",
            "id": f"ev-{self.n}",
            "detail-type": "EC2 Instance-launch Lifecycle Action",
            "source": "aws.autoscaling",
            "account": "123456789012",
            "time": "2026-01-01T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "LifecycleActionToken": f"00000000-0000-4000-8000-{self.n:012d}",
                "AutoScalingGroupName": group,
                "LifecycleHookName": "autojoin-launch",
                "EC2InstanceId": iid,
                "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                **detail,
            },
        }


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Iterator[Env]:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Autojoin")
    logger.setLevel("DEBUG")
    # Powertools bound its handler's stream at import time: add one more handler, with the same JSON
    # formatter, writing to a buffer this test reads (EMF metrics are print()ed and reach capfd).
    buffer = io.StringIO()
    capture = logging.StreamHandler(buffer)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("dynamodb").create_table(
            TableName="state",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        clock = SimClock()
        fleet, vault, handoff = FakeFleet(), FakeVault(), FakeHandOff()
        fleet.add_group("demo-manager", "demo", Role.MANAGER, ZONES)
        fleet.add_group("demo-worker", "demo", Role.WORKER, ZONES)
        swarm = SimSwarm(
            clock,
            take_ticket=handoff.take,
            store_token=vault.store,
            address_of=lambda i: fleet.by_id[i].private_ip or "",
            read_pending=vault.pending,
        )
        settings = Settings(
            cluster="demo",
            state_table="state",
            handoff_table="handoff",
            manager_secret_arn=MGR_ARN,
            worker_secret_arn=WRK_ARN,
            region="us-east-1",
        )
        deps = build_deps(settings, orchestrator=swarm, clock=clock, session=session)
        # the fleet, vault and hand-off are fakes here (the local-cloud suite runs the boto3 ones)
        deps.__dict__.update(fleet=fleet, vault=vault, handoff=handoff)
        assert isinstance(deps.state, DynamoStateStore)
        yield Env(deps, fleet, vault, handoff, swarm, buffer)
    logger.removeHandler(capture)
    logger.setLevel("INFO")


def emf_metrics(out: str) -> list[str]:
    names: list[str] = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            doc = json.loads(line)
            names += [m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
    return names


def test_cluster_grows_through_the_handler_and_nothing_prints_a_token(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    handler = load_handler("on_launch")
    results = [handler(env.event(Role.MANAGER, z), Context(), deps=env.deps) for z in ZONES]
    results += [handler(env.event(Role.WORKER, ZONES[i % 3]), Context(), deps=env.deps) for i in range(5)]
    assert [r["outcome"] for r in results] == ["bootstrapped"] + ["joined"] * 7
    assert all(r["result"] == "CONTINUE" for r in results)
    out = capfd.readouterr()
    everything = env.logs.getvalue() + out.out + out.err + json.dumps(results)
    assert env.vault.current  # tokens exist ...
    assert all(t not in everything for t in env.vault.current.values())  # ... and never got out
    assert not TOKEN.search(everything)
    assert '"level":"DEBUG"' in everything.replace(" ", "")  # debug logging really was on
    metrics = emf_metrics(out.out)
    assert metrics.count("JoinCompleted") == 7 and metrics.count("ClusterBootstrapped") == 1


def test_duplicate_event_is_processed_once(env: Env) -> None:
    handler = load_handler("on_launch")
    handler(env.event(Role.MANAGER, "us-east-1a"), Context(), deps=env.deps)
    event = env.event(Role.WORKER, "us-east-1b")
    first = handler(event, Context(), deps=env.deps)
    second = handler(event, Context(), deps=env.deps)
    assert first == second and first["outcome"] == "joined"
    assert len(env.swarm.members()) == 2
    assert [c[0] for c in env.fleet.completions].count(event["detail"]["EC2InstanceId"]) == 1


@pytest.mark.parametrize(
    "event",
    [
        "not an object",
        {"detail": {"EC2InstanceId": "i-1"}},
        {"version": "0", "source": "aws.autoscaling"},
        {"Event": "autoscaling:TEST_NOTIFICATION"},
    ],
)
def test_malformed_input_is_logged_counted_and_answered_without_raising(
    env: Env, capfd: pytest.CaptureFixture[str], event: Any
) -> None:
    result = load_handler("on_launch")(event, Context(), deps=env.deps)
    assert result["outcome"] == "rejected"
    out = capfd.readouterr().out
    assert '"error_type":"BadInput"' in env.logs.getvalue().replace(" ", "") and "BadInput" in emf_metrics(
        out
    )
    assert env.fleet.completions == []


def test_orchestrator_unreachable_keeps_the_hook_alive_with_a_warning_and_metric(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    handler = load_handler("on_launch")
    managers = [env.event(Role.MANAGER, z) for z in ZONES]
    for e in managers:
        handler(e, Context(), deps=env.deps)
    for e in managers:
        env.swarm.crash(e["detail"]["EC2InstanceId"])
    capfd.readouterr()
    event = env.event(Role.WORKER, "us-east-1a")
    result = handler(event, Context(), deps=env.deps)
    assert (result["outcome"], result["result"], result["error"]) == ("pending", None, "Unreachable")
    out = capfd.readouterr().out
    assert '"level":"WARNING"' in env.logs.getvalue().replace(" ", "") and "JoinPending" in emf_metrics(out)
    assert event["detail"]["EC2InstanceId"] in env.fleet.heartbeats
    assert env.fleet.completions[-1][0] != event["detail"]["EC2InstanceId"]


def test_join_failure_abandons_with_an_error_log_and_metric(
    env: Env, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = load_handler("on_launch")
    handler(env.event(Role.MANAGER, "us-east-1a"), Context(), deps=env.deps)

    def refuse(instance_id: str, role: Role) -> str:
        raise CommandFailed("docker swarm join", 1)

    monkeypatch.setattr(env.swarm, "join", refuse)
    capfd.readouterr()
    result = handler(env.event(Role.WORKER, "us-east-1b"), Context(), deps=env.deps)
    assert (result["outcome"], result["result"], result["error"]) == ("abandoned", "ABANDON", "CommandFailed")
    out = capfd.readouterr().out
    assert '"level":"ERROR"' in env.logs.getvalue().replace(" ", "") and "JoinAbandoned" in emf_metrics(out)
    assert env.fleet.completions[-1][1] is LifecycleResult.ABANDON


def test_test_notification_is_ignored(env: Env) -> None:
    event = {
        "Event": "autoscaling:TEST_NOTIFICATION",
        "AutoScalingGroupName": "demo-worker",
        "Service": "AWS Auto Scaling",
    }
    assert load_handler("on_launch")(event, Context(), deps=env.deps)["outcome"] == "ignored"


def test_rotation_handler_runs_the_steps_and_rejects_bad_input(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    on_launch, rotate = load_handler("on_launch"), load_handler("rotate_tokens")
    on_launch(env.event(Role.MANAGER, "us-east-1a"), Context(), deps=env.deps)
    version = "11111111-2222-4333-8444-555555555555"
    old = env.vault.current[Role.WORKER]
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        out = rotate(
            {"SecretId": WRK_ARN, "ClientRequestToken": version, "Step": step}, Context(), deps=env.deps
        )
        assert out["step"] == step and out["role"] == "worker"
    assert env.vault.current[Role.WORKER] != old  # it rotated: a new current token the swarm accepts ...
    assert env.swarm.valid_token(env.vault.current[Role.WORKER]) is Role.WORKER
    assert env.swarm.valid_token(old) is None  # ... and the old one is refused
    from autojoin.errors import BadInput

    with pytest.raises(BadInput):
        rotate({"SecretId": WRK_ARN}, Context(), deps=env.deps)
    captured = capfd.readouterr()
    assert not TOKEN.search(env.logs.getvalue() + captured.out + captured.err)
    assert '"message":"rejectedrotationinput"' in env.logs.getvalue().replace(" ", "")


# --- the quorum guard's handlers -------------------------------------------------------------------


def _terminate_event(env: Env, iid: str, hook: str = "autojoin-terminate") -> dict[str, Any]:
    info = env.fleet.by_id[iid]
    env.fleet.by_id[iid] = info.model_copy(update={"lifecycle_state": "Terminating:Wait"})
    env.fleet.open_actions.add(iid)
    return {
        "version": "0",
        "id": f"term-{iid}",
        "detail-type": "EC2 Instance-terminate Lifecycle Action",
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "LifecycleActionToken": f"tok-{iid}",
            "AutoScalingGroupName": info.group,
            "LifecycleHookName": hook,
            "EC2InstanceId": iid,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        },
    }


def _guard_settings(env: Env) -> None:
    settings = env.deps.settings.model_copy(
        update={"manager_group": "demo-manager", "worker_group": "demo-worker"}
    )
    env.deps.settings = settings


def test_another_teams_launch_hook_is_never_completed(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    handler = load_handler("on_launch")
    result = handler(
        env.event(Role.MANAGER, "us-east-1a", LifecycleHookName="web-launch"), Context(), deps=env.deps
    )
    assert result["outcome"] == "ignored" and "web-launch" in result["reason"]
    assert env.fleet.completions == []
    assert emf_metrics(capfd.readouterr().out) == ["HookIgnored"]


def test_on_terminate_removes_a_manager_gracefully_and_counts_it(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    _guard_settings(env)
    launch = load_handler("on_launch")
    ids = []
    for z in (*ZONES, *ZONES[:2]):
        event = env.event(Role.MANAGER, z)
        launch(event, Context(), deps=env.deps)
        ids.append(event["detail"]["EC2InstanceId"])
    capfd.readouterr()
    terminate = load_handler("on_terminate")
    result = terminate(_terminate_event(env, ids[-1]), Context(function_name="on_terminate"), deps=env.deps)
    assert result["outcome"] == "removed", result
    assert result["steps"] == ["drain", "demote", "demotion-effective", "leave", "rm"]
    assert (ids[-1], LifecycleResult.CONTINUE) in [(c[0], c[1]) for c in env.fleet.completions]
    metrics = emf_metrics(capfd.readouterr().out)
    assert "ManagerRemoved" in metrics and "QuorumMargin" in metrics
    # another team's terminate hook on the same group: not completed by autojoin
    other = terminate(_terminate_event(env, ids[0], hook="backup-drain"), Context(), deps=env.deps)
    assert other["outcome"] == "ignored"
    assert [c[0] for c in env.fleet.completions].count(ids[0]) == 1  # its launch only


def test_on_terminate_retains_the_manager_at_the_floor_and_raises_the_alarm_metric(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    _guard_settings(env)
    launch = load_handler("on_launch")
    ids = []
    for z in ZONES:
        event = env.event(Role.MANAGER, z)
        launch(event, Context(), deps=env.deps)
        ids.append(event["detail"]["EC2InstanceId"])
    g = env.fleet.groups["demo-manager"]
    env.fleet.groups["demo-manager"] = g.model_copy(update={"desired": 2})
    capfd.readouterr()
    result = load_handler("on_terminate")(_terminate_event(env, ids[0]), Context(), deps=env.deps)
    assert result["outcome"] == "retained" and result["result"] == "ABANDON"
    assert "MinManagers" in result["reason"] and result["operator_action"]
    out = capfd.readouterr().out
    assert "ManagerRetained" in emf_metrics(out)
    assert len([m for m in env.swarm.members() if m.role is Role.MANAGER]) == 3


def test_termination_policy_handler_answers_instance_ids_even_for_bad_input(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    _guard_settings(env)
    policy = load_handler("termination_policy")
    assert policy({"nonsense": True}, Context(), deps=env.deps) == {"InstanceIDs": []}
    assert "BadInput" in emf_metrics(capfd.readouterr().out)
    answer = policy(
        {
            "AutoScalingGroupName": "demo-worker",
            "Cause": "SCALE_IN",
            "CapacityToTerminate": [{"AvailabilityZone": "us-east-1a", "Capacity": 1}],
            "Instances": [{"AvailabilityZone": "us-east-1a", "InstanceId": "i-0000000000000abc"}],
        },
        Context(),
        deps=env.deps,
    )
    assert answer == {"InstanceIDs": ["i-0000000000000abc"]}  # no snapshot: workers allowed, said so
    assert "SnapshotStale" in emf_metrics(capfd.readouterr().out)


def test_reconcile_handler_publishes_the_cluster_metrics_and_never_a_token(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    launch = load_handler("on_launch")
    for z in ZONES:
        launch(env.event(Role.MANAGER, z), Context(), deps=env.deps)
    env.fleet.set_desired("demo-manager", 3)
    capfd.readouterr()
    reconcile = load_handler("reconcile")
    tick = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    report = reconcile(tick, Context(function_name="reconcile"), deps=env.deps)
    assert report["has_leader"] and report["voters"] == 3 and report["quorum_margin"] == 1
    assert report["zone_failures_tolerated"] == 1 and report["leader_az"] == ZONES[0]
    out = capfd.readouterr()
    names = emf_metrics(out.out)
    for name in ("HealthyManagers", "QuorumMargin", "ZoneFailuresTolerated", "PendingJoins", "LeaderAz"):
        assert name in names, name
    leader = [json.loads(line) for line in out.out.splitlines() if '"LeaderAz"' in line and '"_aws"' in line]
    assert leader and leader[0]["az"] == ZONES[0] and leader[0]["cluster"] == "demo"
    everything = env.logs.getvalue() + out.out + out.err + json.dumps(report)
    assert not TOKEN.search(everything)
    # an event of any shape is only the reason it ran
    again = reconcile(["not", "an", "event"], Context(function_name="reconcile"), deps=env.deps)
    assert again["has_leader"]


def emf(out: str) -> dict[str, Any]:
    """Every EMF document's values and metadata, merged (metric name -> its values, key -> metadata)."""
    merged: dict[str, Any] = {}
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            doc = json.loads(line)
            names = {m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
            for key, value in doc.items():
                if key in names:
                    merged.setdefault(key, []).extend(value if isinstance(value, list) else [value])
                elif key != "_aws":
                    merged[key] = value
    return merged


def log_records(env: Env) -> list[dict[str, Any]]:
    return [json.loads(line) for line in env.logs.getvalue().splitlines() if line.startswith("{")]


def _policy_event(group: str, offered: list[tuple[str, str]], capacity: int) -> dict[str, Any]:
    return {
        "AutoScalingGroupName": group,
        "Cause": "INSTANCE_REFRESH",
        "CapacityToTerminate": [{"AvailabilityZone": ZONES[0], "Capacity": capacity}],
        "Instances": [{"AvailabilityZone": z, "InstanceId": i} for i, z in offered],
    }


def test_termination_policy_handler_logs_and_counts_a_refusal_as_blocked(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    _guard_settings(env)
    policy = load_handler("termination_policy")
    capfd.readouterr()
    answer = policy(
        _policy_event("demo-manager", [("i-0000000000000abc", ZONES[0])], 1), Context(), deps=env.deps
    )
    assert answer == {"InstanceIDs": []}
    (record,) = [r for r in log_records(env) if r.get("decision") == "termination_policy"]
    assert (record["level"], record["message"]) == ("WARNING", "managers refused: no cluster snapshot")
    assert (record["cluster"], record["asg"], record["role"], record["cause"]) == (
        "demo",
        "demo-manager",
        "manager",
        "INSTANCE_REFRESH",
    )
    assert record["refused"] == {"i-0000000000000abc": "no cluster snapshot"} and record["stale_snapshot"]
    metrics = emf(capfd.readouterr().out)
    assert metrics["ScaleInBlocked"] == [1.0] and metrics["cause"] == "INSTANCE_REFRESH"
    assert metrics["SnapshotStale"] == [1.0] and metrics["TerminationAllowed"] == [0.0]
    assert "QuorumMargin" not in metrics  # no margin without a snapshot


def test_termination_policy_handler_logs_an_allowed_manager_with_the_margin_left(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    _guard_settings(env)
    managers = [Node(instance_id=f"i-m{k}", role=Role.MANAGER, az=z) for k, z in enumerate(ZONES * 2)][:5]
    now = env.deps.clock.now()
    env.deps.state.save_snapshot(
        ClusterView(cluster="demo", nodes=tuple(managers), zones=ZONES, taken_at=now)
    )
    policy = load_handler("termination_policy")
    capfd.readouterr()
    answer = policy(_policy_event("demo-manager", [("i-m3", ZONES[0])], 1), Context(), deps=env.deps)
    assert answer == {"InstanceIDs": ["i-m3"]}
    (record,) = [r for r in log_records(env) if r.get("decision") == "termination_policy"]
    assert record["level"] == "INFO"
    assert record["message"] == "managers: 1 of 1 asked may go (leaves 1-2-1, margin 1)"
    assert (record["allowed"], record["allowed_ids"], record["margin_after"]) == (1, ["i-m3"], 1)
    metrics = emf(capfd.readouterr().out)
    assert metrics["TerminationAllowed"] == [1.0] and metrics["QuorumMargin"] == [1.0]
    assert "ScaleInBlocked" not in metrics and "SnapshotStale" not in metrics


def test_termination_policy_handler_logs_bad_input_as_an_error(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    _guard_settings(env)
    capfd.readouterr()
    assert load_handler("termination_policy")([], Context(), deps=env.deps) == {"InstanceIDs": []}
    (record,) = [r for r in log_records(env) if r["message"] == "rejected termination policy input"]
    assert (record["level"], record["error_type"]) == ("ERROR", "BadInput")
    assert record["error"] == "termination policy input must be a JSON object, got list"
    assert emf(capfd.readouterr().out)["BadInput"] == [1.0]


def test_rotation_handler_logs_and_counts_each_step_and_each_failure(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    from autojoin.errors import BadInput

    rotate = load_handler("rotate_tokens")
    load_handler("on_launch")(env.event(Role.MANAGER, "us-east-1a"), Context(), deps=env.deps)
    capfd.readouterr()
    env.logs.truncate(0)
    env.logs.seek(0)
    version = "11111111-2222-4333-8444-555555555555"
    out = rotate(
        {"SecretId": WRK_ARN, "ClientRequestToken": version, "Step": "createSecret"}, Context(), deps=env.deps
    )
    assert out == {
        "role": "worker",
        "step": "createSecret",
        "action": "rotated in the cluster; stored as AWSPENDING",
    }
    (step,) = [r for r in log_records(env) if r["level"] == "INFO"]
    assert step["message"] == out["action"]
    assert (step["role"], step["step"], step["action"]) == ("worker", "createSecret", out["action"])
    (debug,) = [r for r in log_records(env) if r["message"] == "rotation step"]
    assert (debug["step"], debug["version_id"]) == ("createSecret", version)
    metrics = emf(capfd.readouterr().out)
    assert metrics["RotationStep"] == [1.0] and (metrics["step"], metrics["role"]) == (
        "createSecret",
        "worker",
    )

    env.logs.truncate(0)
    env.logs.seek(0)
    with pytest.raises(BadInput) as failed:
        rotate(
            {"SecretId": WRK_ARN, "ClientRequestToken": version, "Step": "bogusStep"},
            Context(),
            deps=env.deps,
        )
    assert str(failed.value) == "unknown rotation step 'bogusStep'"  # raised again: Secrets Manager retries
    (error,) = [r for r in log_records(env) if r["level"] == "ERROR"]
    assert (error["message"], error["step"], error["error_type"]) == (
        "rotation step failed",
        "bogusStep",
        "BadInput",
    )
    assert emf(capfd.readouterr().out) == {"service": "autojoin", "RotationFailed": [1.0]}

    env.logs.truncate(0)
    env.logs.seek(0)
    with pytest.raises(BadInput) as rejected:
        rotate({"SecretId": WRK_ARN, "Step": "createSecret"}, Context(), deps=env.deps)
    assert str(rejected.value) == "rotation event needs SecretId, ClientRequestToken and Step"
    (error,) = [r for r in log_records(env) if r["level"] == "ERROR"]
    assert (error["message"], error["error_type"]) == ("rejected rotation input", "BadInput")
    assert emf(capfd.readouterr().out)["BadInput"] == [1.0]
    with pytest.raises(BadInput):
        rotate(["not", "an", "object"], Context(), deps=env.deps)


def test_the_guards_scheduled_pass_reports_what_it_did_and_when_the_swarm_does_not_answer(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    _guard_settings(env)
    launch, on_terminate = load_handler("on_launch"), load_handler("on_terminate")
    ids = []
    for z in ZONES:
        event = env.event(Role.MANAGER, z)
        launch(event, Context(), deps=env.deps)
        ids.append(event["detail"]["EC2InstanceId"])
    event = env.event(Role.WORKER, ZONES[0])
    launch(event, Context(), deps=env.deps)
    worker = event["detail"]["EC2InstanceId"]
    env.swarm.crash(worker)
    env.fleet.terminate(worker, decrement=True)  # its terminate event was lost: the pass works it
    capfd.readouterr()
    env.logs.truncate(0)
    env.logs.seek(0)
    tick = {"detail-type": "Scheduled Event", "source": "aws.events"}
    report = on_terminate(tick, Context(), deps=env.deps)
    assert [d["instance_id"] for d in report["resumed"]] == [worker]
    assert (report["margin"], report["error"], report["released"], report["blocked"]) == (1, None, None, None)
    (removed,) = [r for r in log_records(env) if r.get("decision") == "removed"]
    assert (removed["level"], removed["instance_id"], removed["role"], removed["cluster"]) == (
        "INFO",
        worker,
        "worker",
        "demo",
    )
    metrics = emf(capfd.readouterr().out)
    assert metrics["WorkerRemoved"] == [1.0] and metrics["QuorumMargin"] == [1.0]

    env.swarm.crash(ids[0])
    env.swarm.crash(ids[1])
    env.logs.truncate(0)
    env.logs.seek(0)
    report = on_terminate(tick, Context(), deps=env.deps)
    assert (report["error"], report["margin"]) == ("NoLeader", None)
    (failed,) = [r for r in log_records(env) if r["message"] == "guard pass: the swarm does not answer"]
    assert (failed["level"], failed["error_type"]) == ("WARNING", "NoLeader")
    metrics = emf(capfd.readouterr().out)
    assert metrics["GuardPassFailed"] == [1.0] and "QuorumMargin" not in metrics


def test_the_reconcile_handlers_log_line_and_metric_values(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    launch = load_handler("on_launch")
    ids = []
    for z in ZONES:
        event = env.event(Role.MANAGER, z)
        launch(event, Context(), deps=env.deps)
        ids.append(event["detail"]["EC2InstanceId"])
    env.fleet.set_desired("demo-manager", 3)
    capfd.readouterr()
    env.logs.truncate(0)
    env.logs.seek(0)
    reconcile = load_handler("reconcile")
    tick = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    report = reconcile(tick, Context(function_name="reconcile"), deps=env.deps)
    (line,) = [r for r in log_records(env) if r.get("decision") == "reconcile"]
    assert (line["level"], line["message"], line["trigger"], line["cluster"]) == (
        "INFO",
        "none: at the best layout 1-1-1",
        "Scheduled Event",
        "demo",
    )
    assert (line["has_leader"], line["quorum_margin"], line["zone_failures_tolerated"], line["target"]) == (
        True,
        1,
        1,
        3,
    )
    assert line["actions"] == report["actions"] and line["dry_run"] is False
    docs = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith('{"_aws"')]
    values = {k: v for d in docs for k, v in d.items() if isinstance(v, list)}
    assert values == {
        "LeaderAz": [1.0],
        "RetainedInstances": [0.0],
        "PendingJoins": [0.0],
        "HealthyManagers": [3.0],
        "ZoneFailuresTolerated": [1.0],
        "QuorumMargin": [1.0],
        "ReconcileRun": [1.0],
    }
    dims = {
        m["Name"]: d["Dimensions"]
        for doc in docs
        for d in doc["_aws"]["CloudWatchMetrics"]
        for m in d["Metrics"]
    }
    assert dims["LeaderAz"] == [["cluster", "az"]] and dims["QuorumMargin"] == [["cluster", "service"]]
    assert all(
        doc["cluster"] == "demo" and doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Autojoin"
        for doc in docs
    )

    env.swarm.crash(ids[0])
    env.swarm.crash(ids[1])
    env.logs.truncate(0)
    env.logs.seek(0)
    reconcile(["not", "an", "event"], Context(function_name="reconcile"), deps=env.deps)
    (line,) = [r for r in log_records(env) if r.get("decision") == "reconcile"]
    assert (line["level"], line["message"], line["trigger"], line["has_leader"]) == (
        "WARNING",
        "reconciled",
        "unknown",
        False,
    )
    docs = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith('{"_aws"')]
    values = {k: v for d in docs for k, v in d.items() if isinstance(v, list)}
    assert values == {
        "RetainedInstances": [0.0],
        "PendingJoins": [0.0],
        "QuorumMargin": [-1.0],
        "ReconcileRun": [1.0],
    }


def test_on_terminate_logs_each_outcome_at_its_level_with_its_fields_and_metric(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    _guard_settings(env)
    launch, on_terminate = load_handler("on_launch"), load_handler("on_terminate")
    ids = []
    for z in ZONES:
        event = env.event(Role.MANAGER, z)
        launch(event, Context(), deps=env.deps)
        ids.append(event["detail"]["EC2InstanceId"])
    event = env.event(Role.WORKER, ZONES[1])
    launch(event, Context(), deps=env.deps)
    worker = event["detail"]["EC2InstanceId"]
    capfd.readouterr()

    def run(event: Any) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        env.logs.truncate(0)
        env.logs.seek(0)
        result = on_terminate(event, Context(), deps=env.deps)
        return result, log_records(env), emf(capfd.readouterr().out)

    result, logs, metrics = run(_terminate_event(env, worker))
    assert (result["outcome"], result["reason"]) == ("removed", "drained, left and removed")
    (line,) = [r for r in logs if r.get("decision") == "removed"]
    assert (line["level"], line["message"], line["instance_id"], line["asg"], line["cluster"]) == (
        "INFO",
        "drained, left and removed",
        worker,
        "demo-worker",
        "demo",
    )
    assert (line["role"], line["az"], line["result"], line["steps"]) == (
        "worker",
        ZONES[1],
        "CONTINUE",
        ["drain", "leave", "rm"],
    )
    assert "reason" not in line and "also" not in line and "margin_after" not in line  # empty fields left out
    assert metrics == {"service": "autojoin", "role": "worker", "WorkerRemoved": [1.0]}

    result, logs, metrics = run({"detail-type": "EC2 Instance-terminate Lifecycle Action"})
    reason = "unrecognised event shape (expected an Auto Scaling lifecycle action)"
    assert result == {"outcome": "rejected", "reason": reason}
    (line,) = logs
    assert (line["level"], line["message"], line["error"], line["error_type"]) == (
        "ERROR",
        "rejected terminate input",
        reason,
        "BadInput",
    )
    assert metrics == {"service": "autojoin", "BadInput": [1.0]}

    group = env.fleet.groups["demo-manager"]
    env.fleet.groups["demo-manager"] = group.model_copy(update={"desired": 2})
    result, logs, metrics = run(_terminate_event(env, ids[0]))
    assert result["outcome"] == "retained"
    (line,) = [r for r in logs if r.get("decision") == "retained"]
    assert (line["level"], line["message"], line["role"], line["result"]) == (
        "ERROR",
        result["reason"],
        "manager",
        "ABANDON",
    )
    assert line["operator_action"] == result["operator_action"]
    assert metrics == {"service": "autojoin", "role": "manager", "ManagerRetained": [1.0]}
