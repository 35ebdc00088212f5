"""The real Lambda handlers (functions/*/app.py) with injected deps: moto for DynamoDB (state +
idempotency), in-memory fakes for the fleet/vault/hand-off, the SimSwarm as orchestrator.

Everything the handlers print (Powertools logs at DEBUG, EMF metrics) is captured at the file-descriptor
level and searched for tokens."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import logging
import re
import time
import warnings
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
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Env:
    deps: Deps
    fleet: FakeFleet
    vault: FakeVault
    handoff: FakeHandOff
    swarm: SimSwarm
    logs: io.StringIO
    clock: SimClock  # the one deps and the swarm run on
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
        yield Env(deps, fleet, vault, handoff, swarm, buffer, clock)
    logging.getLogger(logger.name).removeHandler(capture)  # the std logger powertools wraps
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
    assert env.vault.stages(Role.WORKER, version) == ("AWSPENDING",)  # under the version it was asked for
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


def _managers_and_workers(env: Env, managers: tuple[str, ...], workers: tuple[str, ...]) -> list[str]:
    """Launch through the handler: managers (the first bootstraps), then workers; their instance ids."""
    launch = load_handler("on_launch")
    ids = []
    for role, zones in ((Role.MANAGER, managers), (Role.WORKER, workers)):
        for z in zones:
            event = env.event(role, z)
            launch(event, Context(), deps=env.deps)
            ids.append(event["detail"]["EC2InstanceId"])
    return ids


def _guard_pass(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """One scheduled guard pass through on_terminate: its report, its log records and its metrics."""
    capfd.readouterr()
    env.logs.truncate(0)
    env.logs.seek(0)
    tick = {"detail-type": "Scheduled Event", "source": "aws.events"}
    report = load_handler("on_terminate")(tick, Context(function_name="on_terminate"), deps=env.deps)
    return report, log_records(env), emf(capfd.readouterr().out)


def _gone(env: Env, iid: str) -> None:
    """The machine crashed and EC2 terminated it: its node goes Down, no terminate event ever came."""
    env.swarm.crash(iid)
    env.fleet.by_id[iid] = env.fleet.by_id[iid].model_copy(update={"state": "terminated"})


def test_the_guard_pass_logs_and_counts_each_dead_node_removed_or_kept(
    env: Env, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _guard_settings(env)
    *managers, worker = _managers_and_workers(env, ZONES, ZONES[:1])
    env.fleet.set_desired("demo-manager", 3)
    node_of = {m.instance_id: m.node_id for m in env.swarm.members()}
    _gone(env, worker)
    env.clock.advance(60)
    report, logs, metrics = _guard_pass(env, capfd)
    steps = "demotion-effective leave-skipped-unreachable rm"  # a worker is never demoted
    assert report["dead"] == [
        {
            "node_id": node_of[worker],
            "instance_id": worker,
            "role": Role.WORKER,
            "removed": True,
            "reason": steps,
        }
    ]
    (line,) = [r for r in logs if r.get("decision") == "dead_node"]
    assert (line["level"], line["message"], line["node_id"], line["instance_id"], line["cluster"]) == (
        "INFO",
        f"dead node removed: {steps}",
        node_of[worker],
        worker,
        "demo",
    )
    assert metrics == {
        "service": "autojoin",
        "role": "worker",
        "DeadNodeRemoved": [1.0],
        "QuorumMargin": [1.0],
    }

    def refuse(node_id: str) -> None:
        raise CommandFailed("docker node rm", 1)

    monkeypatch.setattr(env.swarm, "remove", refuse)
    _gone(env, managers[2])
    env.clock.advance(60)
    report, logs, metrics = _guard_pass(env, capfd)
    reason = "not removed yet: docker node rm failed (exit 1)"
    assert [(d["instance_id"], d["removed"], d["reason"]) for d in report["dead"]] == [
        (managers[2], False, reason)
    ]
    (line,) = [r for r in logs if r.get("decision") == "dead_node"]
    assert (line["level"], line["message"], line["node_id"], line["instance_id"]) == (
        "WARNING",
        f"dead node kept: {reason}",
        node_of[managers[2]],
        managers[2],
    )
    assert metrics == {"service": "autojoin", "role": "manager", "DeadNodeKept": [1.0], "QuorumMargin": [0.0]}


def test_the_guard_pass_logs_the_manager_it_releases_and_why_it_releases_none(
    env: Env, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _guard_settings(env)
    managers = _managers_and_workers(env, (*ZONES, ZONES[1]), ())  # 1-2-1
    env.fleet.set_protection("demo-manager", managers, True)  # managers launch protected from scale-in
    env.fleet.set_desired("demo-manager", 3)
    holders: list[str] = []
    acquire = env.deps.state.acquire_lease

    def acquire_lease(cluster: str, holder: str, ttl_seconds: int) -> bool:
        holders.append(holder)
        return acquire(cluster, holder, ttl_seconds)

    monkeypatch.setattr(env.deps.state, "acquire_lease", acquire_lease)
    report, logs, metrics = _guard_pass(env, capfd)
    # one of AZ b's two managers (1-2-1 -> 1-1-1), the first offered
    assert (report["released"], report["blocked"], report["margin"]) == (managers[1], None, 1)
    assert env.fleet.protection == {**dict.fromkeys(managers, True), managers[1]: False}
    (line,) = [r for r in logs if r.get("decision") == "protection_lifted"]
    assert (line["level"], line["message"], line["instance_id"], line["cluster"]) == (
        "INFO",
        "scale-in protection lifted from the manager the guard chose",
        managers[1],
        "demo",
    )
    assert metrics == {"service": "autojoin", "ProtectionLifted": [1.0], "QuorumMargin": [1.0]}

    # Auto Scaling takes the released manager: removed gracefully; then the group wants one fewer again
    removed = load_handler("on_terminate")(_terminate_event(env, managers[1]), Context(), deps=env.deps)
    assert removed["outcome"] == "removed"
    gone = env.fleet.by_id[managers[1]]
    env.fleet.by_id[managers[1]] = gone.model_copy(update={"state": "terminated", "lifecycle_state": None})
    env.fleet.set_desired("demo-manager", 2)
    report, logs, metrics = _guard_pass(env, capfd)
    blocked = (
        "the manager group wants 2 and has 3: no manager may go "
        "(would leave 2 healthy managers, below MinManagers 3)"
    )
    assert (report["released"], report["blocked"]) == (None, blocked)
    (line,) = [r for r in logs if r.get("decision") == "scale_in_blocked"]
    assert (line["level"], line["message"], line["cluster"]) == ("WARNING", blocked, "demo")
    assert metrics == {
        "service": "autojoin",
        "cause": "SCALE_IN",
        "ScaleInBlocked": [1.0],
        "QuorumMargin": [1.0],
    }
    # the lease was held in the invocation's name: an operator can tell which pass or action held it
    assert holders[0] == holders[-1] == "guard:req-1"
    assert set(holders[1:-1]) == {f"terminate:{managers[1]}:req-1"}


def test_the_reconcile_handler_warns_at_a_zero_margin_and_names_no_leader_az_it_does_not_know(
    env: Env, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    managers = _managers_and_workers(env, ZONES, ())
    env.fleet.set_desired("demo-manager", 3)
    reconcile = load_handler("reconcile")
    env.swarm.crash(managers[2])
    env.clock.advance(60)

    def run(event: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        capfd.readouterr()
        env.logs.truncate(0)
        env.logs.seek(0)
        report = reconcile(event, Context(function_name="reconcile"), deps=env.deps)
        docs = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith('{"_aws"')]
        return report, [r for r in log_records(env) if r.get("decision") == "reconcile"], docs

    # the handler names its namespace itself: LeaderAz (a single metric) too, whatever the environment
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE")
    # a Lambda destination's record of a launch result: no detail-type
    report, lines, docs = run({"version": "1.0", "requestContext": {"condition": "Success"}})
    assert (report["has_leader"], report["quorum_margin"], report["leader_az"]) == (True, 0, ZONES[0])
    (line,) = lines
    assert (line["level"], line["message"], line["trigger"], line["quorum_margin"]) == (
        "WARNING",  # a leader, but one more manager lost loses the quorum
        "wait: us-east-1c is impaired",
        "unknown",
        0,
    )
    leader = [d for d in docs if "LeaderAz" in d]
    assert [(d["az"], d["LeaderAz"]) for d in leader] == [(ZONES[0], [1.0])]
    assert leader[0]["_aws"]["CloudWatchMetrics"] == [
        {
            "Namespace": "Autojoin",
            "Dimensions": [["cluster", "az"]],
            "Metrics": [{"Name": "LeaderAz", "Unit": "Count"}],
        }
    ]

    # members listed, but none flagged leader (read mid-election): no LeaderAz without an AZ to name
    listed = env.swarm.members

    def members() -> list[Any]:
        return [dataclasses.replace(m, leader=False) for m in listed()]

    monkeypatch.setattr(env.swarm, "members", members)
    report, lines, docs = run({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
    assert (report["has_leader"], report["leader_az"], lines[0]["trigger"]) == (True, None, "Scheduled Event")
    assert [d for d in docs if "LeaderAz" in d] == []
    assert {k: v for d in docs for k, v in d.items() if isinstance(v, list)}["QuorumMargin"] == [0.0]


def test_termination_policy_handler_counts_every_refused_manager_and_the_margin_left(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    _guard_settings(env)
    policy = load_handler("termination_policy")

    def snapshot(count: int) -> list[str]:
        ids = [f"i-m{k}" for k in range(count)]
        nodes = tuple(Node(instance_id=i, role=Role.MANAGER, az=ZONES[k % 3]) for k, i in enumerate(ids))
        env.deps.state.save_snapshot(
            ClusterView(cluster="demo", nodes=nodes, zones=ZONES, taken_at=env.deps.clock.now())
        )
        return ids

    def ask(offered: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        capfd.readouterr()
        env.logs.truncate(0)
        env.logs.seek(0)
        event = _policy_event("demo-manager", [(i, ZONES[0]) for i in offered], len(offered))
        event["Cause"] = "SCALE_IN"
        answer = policy(event, Context(), deps=env.deps)
        (record,) = [r for r in log_records(env) if r.get("decision") == "termination_policy"]
        return answer, record, emf(capfd.readouterr().out)

    ids = snapshot(3)  # 1-1-1, at the floor: both asked are refused, and both are counted
    answer, record, metrics = ask(ids[:2])
    floor = "would leave 2 healthy managers, below MinManagers 3"
    assert answer == {"InstanceIDs": []}
    assert (record["level"], record["message"], record["refused"]) == (
        "WARNING",
        f"managers refused: {floor}",
        {ids[0]: floor, ids[1]: floor},
    )
    assert metrics == {
        "service": "autojoin",
        "cause": "SCALE_IN",
        "ScaleInBlocked": [2.0],
        "TerminationAllowed": [0.0],
        "QuorumMargin": [1.0],
    }

    ids = snapshot(7)  # 3-2-2: one may go and leaves 2-2-2, margin 2
    answer, record, metrics = ask(ids[:1])
    assert answer == {"InstanceIDs": [ids[0]]}
    assert (record["level"], record["message"], record["margin_after"]) == (
        "INFO",
        "managers: 1 of 1 asked may go (leaves 2-2-2, margin 2)",
        2,
    )
    assert metrics == {
        "service": "autojoin",
        "cause": "SCALE_IN",
        "TerminationAllowed": [1.0],
        "QuorumMargin": [2.0],
    }


def _fields(record: dict[str, Any]) -> dict[str, Any]:
    """A log record without what Powertools adds to every line (time, location, the Lambda context)."""
    fixed = {"timestamp", "location", "service", "cold_start", "xray_trace_id"}
    return {k: v for k, v in record.items() if k not in fixed and not k.startswith("function_")}


def _terminate(
    env: Env, capfd: pytest.CaptureFixture[str], event: Any
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """One on_terminate invocation: its answer, its log records and its metrics."""
    capfd.readouterr()
    env.logs.truncate(0)
    env.logs.seek(0)
    result = load_handler("on_terminate")(event, Context(function_name="on_terminate"), deps=env.deps)
    return result, log_records(env), emf(capfd.readouterr().out)


def test_on_terminate_warns_of_a_waiting_removal_and_logs_it_again_when_worked_later(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    _guard_settings(env)
    managers = _managers_and_workers(env, (*ZONES, *ZONES, ZONES[0]), ())  # 3-2-2
    env.fleet.set_desired("demo-manager", 5)
    env.deps.state.acquire_lease("demo", "someone-else", 300)
    result, logs, metrics = _terminate(env, capfd, _terminate_event(env, managers[3]))
    reason = "the cluster lease is held by someone-else (waiting 0s of 2700s; hook kept alive)"
    assert (result["outcome"], result["reason"]) == ("waiting", reason)
    assert [_fields(r) for r in logs] == [
        {
            "level": "WARNING",
            "message": reason,
            "cluster": "demo",
            "instance_id": managers[3],
            "asg": "demo-manager",
            "decision": "waiting",
            "outcome": "waiting",
            "role": "manager",
            "az": ZONES[0],
            "error": "LeaseHeld",
        }
    ]
    assert metrics == {"service": "autojoin", "role": "manager", "ScaleInBlocked": [1.0]}

    # the lease is free again: the next removal works the waiting one with it, and both are logged
    env.deps.state.release_lease("demo", "someone-else")
    result, logs, metrics = _terminate(env, capfd, _terminate_event(env, managers[6]))
    assert [(result["instance_id"], result["outcome"])] + [
        (d["instance_id"], d["outcome"]) for d in result["also"]
    ] == [(managers[6], "removed"), (managers[3], "removed")]

    def removed(iid: str) -> dict[str, Any]:
        return {
            "level": "INFO",
            "message": "demoted, left and removed",
            "cluster": "demo",
            "instance_id": iid,
            "asg": "demo-manager",
            "decision": "removed",
            "outcome": "removed",
            "role": "manager",
            "az": ZONES[0],
            "result": "CONTINUE",
            "completion": "completed",
            "steps": ["drain", "demote", "demotion-effective", "leave", "rm"],
            "margin_after": 2,  # 7 -> 6 -> 5 managers, all healthy
        }

    assert [_fields(r) for r in logs] == [removed(managers[6]), removed(managers[3])]  # never "also"
    assert metrics == {
        "service": "autojoin",
        "role": "manager",
        "ManagerRemoved": [1.0, 1.0],
        "QuorumMargin": [2.0, 2.0],
    }

    test = {"Event": "autoscaling:TEST_NOTIFICATION", "AutoScalingGroupName": "demo-manager"}
    result, logs, metrics = _terminate(env, capfd, test)
    assert (result["outcome"], result["reason"]) == ("ignored", "test notification: nothing to complete")
    assert [_fields(r) for r in logs] == [
        {
            "level": "WARNING",
            "message": "test notification: nothing to complete",
            "cluster": "demo",
            "instance_id": "",  # the notification names no instance
            "asg": "demo-manager",
            "decision": "ignored",
            "outcome": "ignored",
        }
    ]
    assert metrics == {"service": "autojoin", "role": "", "HookIgnored": [1.0]}


def test_outside_lambda_each_invocation_holds_the_lease_under_a_fresh_name(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autojoin import entrypoints
    from autojoin.observability import metrics

    _guard_settings(env)
    managers = _managers_and_workers(env, (*ZONES, *ZONES[:2]), ())
    env.fleet.set_desired("demo-manager", 3)
    holders: list[str] = []
    acquire = env.deps.state.acquire_lease

    def acquire_lease(cluster: str, holder: str, ttl_seconds: int) -> bool:
        holders.append(holder)
        return acquire(cluster, holder, ttl_seconds)

    monkeypatch.setattr(env.deps.state, "acquire_lease", acquire_lease)
    try:
        for iid in managers[3:]:  # no Lambda context (the CLI, a script): no request id to name the holder
            removed = entrypoints.on_terminate(_terminate_event(env, iid), None, env.deps)
            assert removed["outcome"] == "removed"
    finally:
        metrics.clear_metrics()  # no handler decorator flushed them: leave none to the next test
    names = dict.fromkeys(holders)
    assert [re.sub(r":[0-9a-f]{32}$", ":<uuid>", h) for h in names] == [
        f"terminate:{managers[3]}:<uuid>",
        f"terminate:{managers[4]}:<uuid>",
    ]
    first, second = (h.rsplit(":", 1)[1] for h in names)
    assert first != second


def _launch(
    env: Env, capfd: pytest.CaptureFixture[str], event: Any, context: Context | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """One on_launch invocation: its answer, its log records and its metrics."""
    capfd.readouterr()
    env.logs.truncate(0)
    env.logs.seek(0)
    result = load_handler("on_launch")(event, context or Context(), deps=env.deps)
    logs = [_fields(r) for r in log_records(env)]
    return result, logs, emf(capfd.readouterr().out)


def _above_debug(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in logs if r["level"] != "DEBUG"]


def test_on_launch_logs_each_decision_at_its_level_with_its_fields_and_metric(
    env: Env, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def line(level: str, message: str, **fields: Any) -> dict[str, Any]:
        return {"level": level, "message": message, "cluster": "demo", **fields}

    result, logs, metrics = _launch(env, capfd, {"detail": {"EC2InstanceId": "i-1"}})
    assert result["outcome"] == "rejected" and result["reason"].startswith("not a lifecycle action event: ")
    error = {"error": result["reason"], "error_type": "BadInput"}
    assert logs == [{"level": "ERROR", "message": "rejected launch input", **error}]
    assert metrics == {"service": "autojoin", "BadInput": [1.0]}

    def action(event: dict[str, Any]) -> dict[str, Any]:
        """The launch action as the DEBUG line shows it (JSON values: the kind's name, not its repr)."""
        d = event["detail"]
        return {
            "kind": "launching",
            "group": d["AutoScalingGroupName"],
            "instance_id": d["EC2InstanceId"],
            "hook": d["LifecycleHookName"],
            "token": d["LifecycleActionToken"],  # Auto Scaling's action token, not a join token
            "origin": None,
            "destination": None,
            "event_id": event["id"],
            "metadata": None,
        }

    other = env.event(Role.MANAGER, ZONES[0], LifecycleHookName="web-launch")
    keys = {"cluster": "demo", "instance_id": other["detail"]["EC2InstanceId"], "asg": "demo-manager"}
    result, logs, metrics = _launch(env, capfd, other)
    reason = "hook web-launch is not autojoin's (autojoin-launch): not completed"
    assert result == {"outcome": "ignored", "reason": reason, "instance_id": keys["instance_id"]}
    assert logs == [
        {"level": "DEBUG", "message": "launch action", **keys, "action": action(other)},
        {"level": "WARNING", "message": reason, **keys, "decision": "ignored", "hook": "web-launch"},
    ]
    assert metrics == {"service": "autojoin", "hook": "web-launch", "HookIgnored": [1.0]}

    first = env.event(Role.MANAGER, ZONES[0])
    iid = first["detail"]["EC2InstanceId"]
    result, logs, metrics = _launch(env, capfd, first)
    keys["instance_id"] = iid
    assert logs[:2] == [
        {"level": "DEBUG", "message": "launch action", **keys, "action": action(first)},
        {"level": "DEBUG", "message": "launch decision", **keys, "decision_detail": result},
    ]
    done = {"result": "CONTINUE", "completion": "completed"}
    assert _above_debug(logs) == [
        line(
            "INFO",
            "first manager: initialised the cluster",
            instance_id=iid,
            asg="demo-manager",
            decision="bootstrapped",
            role="manager",
            az=ZONES[0],
            **done,
        )
    ]
    assert metrics == {"service": "autojoin", "role": "manager", "ClusterBootstrapped": [1.0]}

    event = env.event(Role.WORKER, ZONES[1])
    result, logs, metrics = _launch(env, capfd, event)
    worker = {"instance_id": event["detail"]["EC2InstanceId"], "asg": "demo-worker", "role": "worker"}
    assert _above_debug(logs) == [
        line("INFO", "joined as worker", decision="joined", az=ZONES[1], **worker, **done)
    ]
    assert metrics == {"service": "autojoin", "role": "worker", "JoinCompleted": [1.0]}

    test = {"Event": "autoscaling:TEST_NOTIFICATION", "AutoScalingGroupName": "demo-worker"}
    result, logs, metrics = _launch(env, capfd, test)
    reason = "test notification: nothing to complete"
    assert (result["outcome"], result["reason"], result["role"]) == ("ignored", reason, None)
    # the notification names no instance and no role: nothing but the decision is logged with it
    assert _above_debug(logs) == [line("INFO", reason, instance_id="", asg="demo-worker", decision="ignored")]
    assert metrics == {"service": "autojoin", "role": "", "LaunchIgnored": [1.0]}

    def refuse(instance_id: str, role: Role) -> str:
        raise CommandFailed("docker swarm join", 1)

    monkeypatch.setattr(env.swarm, "join", refuse)
    event = env.event(Role.WORKER, ZONES[2])
    result, logs, metrics = _launch(env, capfd, event)
    worker["instance_id"] = event["detail"]["EC2InstanceId"]
    assert _above_debug(logs) == [
        line(
            "ERROR",
            "join failed: CommandFailed",
            decision="abandoned",
            az=ZONES[2],
            **worker,
            result="ABANDON",
            completion="completed",
            error="CommandFailed",
        )
    ]
    assert metrics == {"service": "autojoin", "role": "worker", "JoinAbandoned": [1.0]}

    monkeypatch.undo()
    env.swarm.crash(iid)
    event = env.event(Role.WORKER, ZONES[2])
    result, logs, metrics = _launch(env, capfd, event)
    worker["instance_id"] = event["detail"]["EC2InstanceId"]
    assert _above_debug(logs) == [
        line(
            "WARNING",  # waiting because something is wrong: no result, no completion yet
            "no manager of the cluster answers: waiting (hook kept alive)",
            decision="pending",
            az=ZONES[2],
            **worker,
            error="Unreachable",
        )
    ]
    assert metrics == {"service": "autojoin", "role": "worker", "JoinPending": [1.0]}


def test_on_launch_logs_a_pending_join_finished_by_a_later_launch_as_its_own_decision(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    early = env.event(Role.WORKER, ZONES[2])
    worker = early["detail"]["EC2InstanceId"]
    result, logs, metrics = _launch(env, capfd, early)
    reason = "the cluster has no manager yet: waiting (hook kept alive)"
    assert (result["outcome"], result["error"]) == ("pending", None)
    assert _above_debug(logs) == [
        {
            "level": "INFO",  # waiting, but nothing is wrong: the first manager is on its way
            "message": reason,
            "cluster": "demo",
            "instance_id": worker,
            "asg": "demo-worker",
            "decision": "pending",
            "role": "worker",
            "az": ZONES[2],
        }
    ]
    assert metrics == {"service": "autojoin", "role": "worker", "JoinPending": [1.0]}

    first = env.event(Role.MANAGER, ZONES[0])
    result, logs, metrics = _launch(env, capfd, first)  # 60 s left: less than one join's budget
    later = "not enough time left in this invocation"
    assert [(d["instance_id"], d["outcome"], d["reason"]) for d in result["also_joined"]] == [
        (worker, "pending", later)
    ]
    (still,) = [r for r in logs if r["message"] == later]
    assert (still["level"], still["decision"], still["instance_id"]) == ("INFO", "pending", worker)
    assert metrics == {"service": "autojoin", "role": "", "ClusterBootstrapped": [1.0], "JoinPending": [1.0]}

    first = env.event(Role.MANAGER, ZONES[0])
    manager = first["detail"]["EC2InstanceId"]
    # time for the pending join too (on_launch has 300 s)
    result, logs, metrics = _launch(env, capfd, first, Context(remaining_ms=290_000))
    assert [(d["instance_id"], d["outcome"]) for d in result["also_joined"]] == [(worker, "joined")]
    keys = {"cluster": "demo", "instance_id": manager, "asg": "demo-manager"}  # this invocation's keys
    done = {"result": "CONTINUE", "completion": "completed"}
    assert _above_debug(logs) == [
        {
            "level": "INFO",
            "message": "joined as manager",
            **keys,
            "decision": "joined",
            "role": "manager",
            "az": ZONES[0],
            **done,
        },
        {
            "level": "INFO",
            "message": "joined as worker",
            **keys,
            "instance_id": worker,  # the decision's own instance, over the invocation's
            "decision": "joined",
            "role": "worker",
            "az": ZONES[2],
            **done,
        },
    ]
    assert metrics == {"service": "autojoin", "role": "worker", "JoinCompleted": [1.0, 1.0]}


@pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")  # Powertools, no context
def test_outside_lambda_a_launch_has_no_deadline_and_finishes_every_pending_join(env: Env) -> None:
    from autojoin import entrypoints
    from autojoin.observability import metrics

    early = env.event(Role.WORKER, ZONES[1])
    try:  # no Lambda context (the CLI, a script): no time limit, no idempotency deadline
        assert entrypoints.on_launch(early, None, env.deps)["outcome"] == "pending"
        boot = entrypoints.on_launch(env.event(Role.MANAGER, ZONES[0]), None, env.deps)
    finally:
        metrics.clear_metrics()  # no handler decorator flushed them: leave none to the next test
    assert boot["outcome"] == "bootstrapped"
    assert [(d["instance_id"], d["outcome"]) for d in boot["also_joined"]] == [
        (early["detail"]["EC2InstanceId"], "joined")
    ]


def test_a_launch_action_is_done_once_per_token_and_remembered_for_the_configured_ttl(env: Env) -> None:
    handler = load_handler("on_launch")
    handler(env.event(Role.MANAGER, ZONES[0]), Context(), deps=env.deps)
    event = env.event(Role.WORKER, ZONES[1])
    before, before_ms = int(time.time()), int(time.time() * 1000)
    first = handler(event, Context(), deps=env.deps)
    after, after_ms = int(time.time()), int(time.time() * 1000)
    # the same lifecycle action in another event (a replay, a second rule): its token is the key
    again = handler({**event, "id": "ev-replayed"}, Context(), deps=env.deps)
    assert first["outcome"] == "joined" and again == first
    assert [c[0] for c in env.fleet.completions].count(event["detail"]["EC2InstanceId"]) == 1
    items = env.deps.client("dynamodb").scan(TableName="state")["Items"]
    records = [i for i in items if i["pk"]["S"] == "idempotency#demo"]
    assert len(records) == 2  # one per token: the replay added none
    ttl = env.deps.settings.idempotency_ttl
    assert ttl == 7200  # the default, not Powertools' own hour
    expiry = max(int(r["expires_at"]["N"]) for r in records)
    assert before + ttl <= expiry <= after + ttl + 1
    # while it runs, the record is held no longer than the invocation can live (its context: 60 s left)
    in_progress = max(int(r["in_progress_expiration"]["N"]) for r in records)
    assert before_ms + 60_000 <= in_progress <= after_ms + 60_000


def test_a_launch_with_exactly_one_join_budget_left_still_finishes_a_pending_join(env: Env) -> None:
    handler = load_handler("on_launch")
    early = env.event(Role.WORKER, ZONES[1])
    assert handler(early, Context(), deps=env.deps)["outcome"] == "pending"
    budget = env.deps.launch.config.join_budget  # 120 s join + 60 s for Ready + 30 s clean-up
    assert budget == 210
    context = Context(remaining_ms=210_000)
    boot = handler(env.event(Role.MANAGER, ZONES[0]), context, deps=env.deps)
    assert [(d["instance_id"], d["outcome"]) for d in boot["also_joined"]] == [
        (early["detail"]["EC2InstanceId"], "joined")
    ]


def test_a_deferred_launch_is_logged_counted_and_raised_for_lambdas_retry(
    env: Env, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from autojoin.errors import JoinDeferred, NodeNotReady

    def booting(instance_id: str, address: str) -> str:
        raise NodeNotReady("SSM does not know the instance yet")

    monkeypatch.setattr(env.swarm, "init", booting)
    first = env.event(Role.MANAGER, ZONES[0])
    iid = first["detail"]["EC2InstanceId"]
    capfd.readouterr()
    with pytest.raises(JoinDeferred) as deferred:
        load_handler("on_launch")(first, Context(), deps=env.deps)
    reason = f"{iid} cannot run commands yet; the bootstrap waits"
    assert str(deferred.value) == reason
    assert [_fields(r) for r in log_records(env) if r["level"] != "DEBUG"] == [
        {
            "level": "WARNING",
            "message": reason,
            "cluster": "demo",
            "instance_id": iid,
            "asg": "demo-manager",
            "decision": "deferred",
        }
    ]
    assert emf(capfd.readouterr().out) == {"service": "autojoin", "JoinDeferred": [1.0]}
    monkeypatch.undo()
    # Lambda's retry of the same event: not answered from an idempotency record, it bootstraps
    assert load_handler("on_launch")(first, Context(), deps=env.deps)["outcome"] == "bootstrapped"


def test_a_test_notification_skips_idempotency_without_a_missing_key_warning(env: Env) -> None:
    event = {"Event": "autoscaling:TEST_NOTIFICATION", "AutoScalingGroupName": "demo-worker"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load_handler("on_launch")(event, Context(), deps=env.deps)
    assert result["outcome"] == "ignored"
    # it has no action token: through Powertools it would warn "No idempotency key value found"
    assert [str(w.message) for w in caught if "idempotency" in str(w.message).lower()] == []
    items = env.deps.client("dynamodb").scan(TableName="state")["Items"]
    assert [i for i in items if i["pk"]["S"] == "idempotency#demo"] == []


@pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")  # Powertools, no deadline
def test_a_context_without_lambdas_clock_is_treated_as_no_deadline(env: Env) -> None:
    from types import SimpleNamespace

    from autojoin import entrypoints
    from autojoin.observability import metrics

    local = SimpleNamespace(aws_request_id="local-1")  # a local runner's context: no remaining time to ask
    early = env.event(Role.WORKER, ZONES[1])
    try:
        assert entrypoints.on_launch(early, local, env.deps)["outcome"] == "pending"
        boot = entrypoints.on_launch(env.event(Role.MANAGER, ZONES[0]), local, env.deps)
    finally:
        metrics.clear_metrics()  # no handler decorator flushed them: leave none to the next test
    assert [(d["instance_id"], d["outcome"]) for d in boot["also_joined"]] == [
        (early["detail"]["EC2InstanceId"], "joined")
    ]
