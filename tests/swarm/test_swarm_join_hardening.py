"""Issue 11 on the real swarm: no token on any process's command line or in any surface the join path
touches, and an injected failure at each step of a rotation leaves joins working.

One cluster ("hard": one manager, workers added as the tests go) is reused by the tests in file order. The
joins go through the real LaunchService (refresh on a refused token, the hand-off row, the node agent), the
rotations through the real RotationService; only the Fleet (lab nodes are no EC2 instances) is a fake.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.client
import pytest
from tests.fakes import FakeFleet

from autojoin.adapters.aws.handoff import DynamoHandOff
from autojoin.adapters.aws.ssm_runner import SsmCommandRunner
from autojoin.adapters.aws.state import DynamoStateStore
from autojoin.adapters.aws.tokens import SecretsManagerTokenVault
from autojoin.adapters.swarm.orchestrator import SwarmOrchestrator
from autojoin.clock import SystemClock
from autojoin.domain.model import LifecycleAction, LifecycleKind, Role
from autojoin.errors import JoinDeferred, TransientAwsError, Unreachable
from autojoin.lab import PRINCIPAL_ROLE_ID, LabNode
from autojoin.node import agent
from autojoin.observability import harden_logging, logger
from autojoin.ports import CommandResult, CommandRunner
from autojoin.services.launch import LaunchConfig, LaunchService, Outcome
from autojoin.services.rotation import RotationService
from autojoin.settings import Settings

from .swarm_support import TABLE, Cluster

pytestmark = pytest.mark.swarm
STATE_TABLE = "autojoin-state"
MARK = b"SWMTKN-"


# --- every process's command line ------------------------------------------------------------------


class CmdlineScanner:
    """Reads /proc/*/cmdline of every process, over and over, in a thread; records the program of any
    process whose command line holds ``SWMTKN-`` (never the command line itself)."""

    def __init__(self) -> None:
        self.hits: list[tuple[int, str]] = []
        self.programs: set[str] = set()
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        raw = fh.read()
                except OSError:
                    continue
                args = raw.split(b"\0")
                program = " ".join(a.decode(errors="replace") for a in args[:3] if MARK not in a)
                self.programs.add(program)
                if MARK in raw:
                    self.hits.append((int(pid), program))
            self.scans += 1
            time.sleep(0.002)

    def __enter__(self) -> CmdlineScanner:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_the_scanner_sees_a_short_lived_process_holding_a_token() -> None:
    """The scan below can fail: a half-second process with a token-shaped argument is caught."""
    with CmdlineScanner() as scanner:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.5)", "SWMTKN-canary"], check=True)
    assert [program for _pid, program in scanner.hits][:1] == [
        f"{sys.executable} -c import time; time.sleep(0.5)"
    ]


# --- the cluster and the services under test -------------------------------------------------------


@dataclass
class LabSsm:
    """SSM Run Command's stand-in for the lab, under the real SsmCommandRunner: SendCommand's command line
    is split and run on the lab node (LocalSocketRunner); every parameter and output is kept, as SSM's
    command history keeps them."""

    runner: CommandRunner
    history: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, CommandResult] = field(default_factory=dict)

    def send_command(self, **params: Any) -> dict[str, Any]:
        self.history.append(json.loads(json.dumps(params)))
        command_id = uuid.uuid4().hex
        (instance_id,) = params["InstanceIds"]
        (command,) = params["Parameters"]["commands"]
        self.outputs[command_id] = self.runner.run(instance_id, shlex.split(command), timeout=120)
        return {"Command": {"CommandId": command_id}}

    def get_command_invocation(self, CommandId: str, InstanceId: str) -> dict[str, Any]:
        result = self.outputs[CommandId]
        self.history.append({"output": result.stdout, "error": result.stderr})
        return {
            "Status": "Success" if result.exit_code == 0 else "Failed",
            "ResponseCode": result.exit_code,
            "StandardOutputContent": result.stdout,
            "StandardErrorContent": result.stderr,
        }

    def cancel_command(self, **_: Any) -> dict[str, Any]:
        return {}


@dataclass
class Hard:
    """The cluster with the production services wired over it."""

    cluster: Cluster
    ssm: LabSsm
    orch: SwarmOrchestrator
    vault: SecretsManagerTokenVault
    state: DynamoStateStore
    fleet: FakeFleet
    launch: LaunchService
    rotation: RotationService
    n: int = 0

    def new_node(self, role: Role) -> tuple[LabNode, LifecycleAction]:
        self.n += 1
        group = "mgr" if role is Role.MANAGER else "wrk"
        node = self.cluster.add("a")
        self.fleet.launch(node.instance_id, group, node.az, node.address)
        action = LifecycleAction(
            kind=LifecycleKind.LAUNCHING,
            group=group,
            instance_id=node.instance_id,
            hook="autojoin-launch",
            token=f"tok-{self.n}",
        )
        return node, action

    def bootstrap(self) -> None:
        """The first manager, through on_launch's bootstrap (once per module)."""
        if self.cluster.managers:
            return
        first, action = self.new_node(Role.MANAGER)
        self.cluster.managers.append(first)  # the orchestrator's candidate managers
        self.cluster.nodes.append(first)
        assert self.launch.handle(action).outcome is Outcome.BOOTSTRAPPED

    def launch_worker(self) -> Outcome:
        node, action = self.new_node(Role.WORKER)
        decision = self.launch.handle(action)
        if decision.outcome is Outcome.JOINED:
            self.cluster.nodes.append(node)
        return decision.outcome

    def rotate(self, secret: str, version: str, steps: Sequence[str] = ()) -> None:
        for step in steps or ("createSecret", "setSecret", "testSecret", "finishSecret"):
            self.rotation.handle(secret, version, step)


@pytest.fixture(scope="module")
def hard(new_cluster: Callable[[str], Cluster], aws: boto3.Session) -> Hard:
    cluster = new_cluster("hard")
    ssm = LabSsm(cluster.runner)
    managers = lambda: [m.instance_id for m in cluster.managers]  # noqa: E731
    orch = SwarmOrchestrator(SsmCommandRunner(ssm, sleep=lambda _s: None), managers)
    cluster.orch = orch  # everything below goes through SSM's path
    db = aws.client("dynamodb")
    db.create_table(
        TableName=STATE_TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    clock = SystemClock()
    state = DynamoStateStore(db, STATE_TABLE, clock.now)
    secrets = {role: cluster.secret_id(role) for role in Role}
    vault = SecretsManagerTokenVault(aws.client("secretsmanager"), secrets, max_age=300)
    fleet = FakeFleet()
    fleet.add_group("mgr", "hard", Role.MANAGER, ["a"])
    fleet.add_group("wrk", "hard", Role.WORKER, ["a"])
    handoff = DynamoHandOff(db, TABLE, dict.fromkeys(Role, PRINCIPAL_ROLE_ID), lambda: datetime.now(UTC))
    launch = LaunchService(
        LaunchConfig(cluster="hard", join_wait=60.0, poll_interval=0.5),
        fleet=fleet,
        vault=vault,
        handoff=handoff,
        orchestrator=orch,
        state=state,
        clock=clock,
    )
    settings = Settings(
        cluster="hard",
        state_table=STATE_TABLE,
        manager_secret_arn=secrets[Role.MANAGER],
        worker_secret_arn=secrets[Role.WORKER],
    )
    rotation = RotationService(settings, vault=vault, orchestrator=orch, state=state)
    return Hard(cluster, ssm, orch, vault, state, fleet, launch, rotation)


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The root logger at DEBUG with a handler (as the Lambda runtime has), and the Powertools logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    logger.setLevel("DEBUG")
    harden_logging()  # what observability does at import, for the handlers present then
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
        logging.getLogger(logger.name).removeHandler(handler)  # the std logger powertools wraps
        logger.setLevel("INFO")


def _secret_values(aws: boto3.Session, cluster: Cluster) -> set[str]:
    sm = aws.client("secretsmanager")
    out: set[str] = set()
    for role in Role:
        for v in sm.list_secret_version_ids(SecretId=cluster.secret_id(role), IncludeDeprecated=True)[
            "Versions"
        ]:
            out.add(
                sm.get_secret_value(SecretId=cluster.secret_id(role), VersionId=v["VersionId"])[
                    "SecretString"
                ]
            )
    return out


# --- 2 + 4: no token on a command line, in SSM's history, in a log line --------------------------------


def test_no_token_on_any_command_line_or_surface_through_ssm_agent_and_services(
    hard: Hard, aws: boto3.Session, captured_logs: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    cluster = hard.cluster
    with CmdlineScanner() as scanner:
        hard.bootstrap()
        assert hard.launch_worker() is Outcome.JOINED
        version = str(uuid.uuid4())
        hard.rotate(cluster.secret_id(Role.WORKER), version)
        assert hard.launch_worker() is Outcome.JOINED  # the warm vault's stale token: refreshed, retried
        hard.orch.sync_token(Role.MANAGER, str(uuid.uuid4()))
        logger.debug("decision", extra={"detail": {"outcome": "joined"}})
    out = capfd.readouterr()
    tokens = _secret_values(aws, cluster)
    assert len(tokens) >= 3  # manager, worker, rotated worker
    assert scanner.scans > 50 and any("docker" in p for p in scanner.programs)  # it saw the CLI calls
    assert scanner.hits == [], f"a join token was on the command line of {sorted(set(scanner.hits))}"
    surfaces = {
        "SSM command history (parameters and outputs)": json.dumps(hard.ssm.history),
        "root and Powertools log lines": captured_logs.getvalue(),
        "stdout/stderr": out.out + out.err,
    }
    assert "autojoin-node join --role worker" in surfaces["SSM command history (parameters and outputs)"]
    assert captured_logs.getvalue(), "the capture saw log lines"
    for name, text in surfaces.items():
        assert not any(t in text for t in tokens), f"a join token leaked into {name}"
        assert "SWMTKN-" not in text, f"something token-shaped leaked into {name}"


# --- 1: a failure injected at each step of a rotation leaves joins working -----------------------------


@pytest.fixture
def aws_faults(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Make the next N calls of an AWS operation fail (``faults["PutSecretValue"] = 9``), whoever calls it."""
    faults: dict[str, int] = {}
    real = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]  # private: not in the stubs

    def failing(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if faults.get(operation):
            faults[operation] -= 1
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "InternalServiceError", "Message": "injected"}}, operation
            )
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", failing)
    monkeypatch.setattr(agent, "PUT_RETRY_DELAYS", (0.0, 0.0, 0.0))
    return faults


class TimesOutAfterDelivery(CommandRunner):
    """The command runs on the node, then the runner reports a timeout (SSM's ambiguous failure)."""

    def __init__(self, inner: CommandRunner, verb: str) -> None:
        self.inner, self.verb, self.fired = inner, verb, 0

    def run(self, instance_id: str, argv: Sequence[str], *, timeout: float = 60.0) -> CommandResult:
        result = self.inner.run(instance_id, argv, timeout=timeout)
        if not self.fired and self.verb in argv:
            self.fired += 1
            raise Unreachable("SSM command timed out")
        return result


def test_rotation_failures_at_each_step_leave_joins_working(
    hard: Hard, aws_faults: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    hard.bootstrap()
    cluster, lab = hard.cluster, hard.cluster.lab
    worker_secret = cluster.secret_id(Role.WORKER)
    manager = cluster.managers[0]

    # createSecret: the swarm rotates, every put of the node fails (more than its retries)
    aws_faults["PutSecretValue"] = 4
    hard.rotate(worker_secret, str(uuid.uuid4()))
    assert aws_faults["PutSecretValue"] == 0
    assert hard.launch_worker() is Outcome.JOINED

    # createSecret: the rotation and the put happen, the runner reports a timeout (ambiguous)
    ambiguous = TimesOutAfterDelivery(hard.ssm.runner, "rotate")
    monkeypatch.setattr(hard.ssm, "runner", ambiguous)
    hard.rotate(worker_secret, str(uuid.uuid4()))
    assert ambiguous.fired == 1
    assert hard.launch_worker() is Outcome.JOINED

    # between createSecret and testSecret: a stray rotation (a ghost command) moves the swarm on; testSecret
    # re-syncs the secret from the swarm
    version = str(uuid.uuid4())
    hard.rotate(worker_secret, version, ["createSecret", "setSecret"])
    rotated = lab.docker(manager, "swarm", "join-token", "--rotate", "-q", "worker")
    assert rotated.returncode == 0
    with pytest.raises(JoinDeferred):  # both the current and the pending token refused: deferred
        hard.launch_worker()
    assert "re-synced" in hard.rotation.handle(worker_secret, version, "testSecret").action
    assert hard.launch_worker() is Outcome.JOINED  # ... and the deferred launch is finished with it
    hard.rotate(worker_secret, version, ["finishSecret"])
    assert hard.launch_worker() is Outcome.JOINED

    # testSecret cannot reach a manager, then finishSecret fails once: retried steps, joins meanwhile
    version = str(uuid.uuid4())
    hard.rotate(worker_secret, version, ["createSecret", "setSecret"])
    unreachable = TimesOutAfterDelivery(hard.ssm.runner, "check-token")
    monkeypatch.setattr(hard.ssm, "runner", unreachable)
    with pytest.raises(Unreachable):
        hard.rotate(worker_secret, version, ["testSecret"])
    assert hard.launch_worker() is Outcome.JOINED
    hard.rotate(worker_secret, version, ["testSecret"])
    aws_faults["UpdateSecretVersionStage"] = 1
    with pytest.raises(TransientAwsError):
        hard.rotate(worker_secret, version, ["finishSecret"])
    assert hard.launch_worker() is Outcome.JOINED
    hard.rotate(worker_secret, version, ["finishSecret"])
    assert hard.launch_worker() is Outcome.JOINED

    # in the end the secret holds exactly what the swarm accepts, and nothing is left pending
    sm = cluster.aws.client("secretsmanager")
    current = sm.get_secret_value(SecretId=worker_secret, VersionStage="AWSCURRENT")["SecretString"]
    held = lab.docker(manager, "swarm", "join-token", "-q", "worker").stdout.strip()
    assert current == held
    stages = [
        s for v in sm.list_secret_version_ids(SecretId=worker_secret)["Versions"] for s in v["VersionStages"]
    ]
    assert "AWSPENDING" not in stages
    # every worker instance launched (the deferred one too) is a Ready worker; nothing was abandoned
    launched = {i.instance_id for i in hard.fleet.instances("wrk")}
    workers = {m.instance_id: m for m in hard.orch.members() if m.role is Role.WORKER}
    assert set(workers) == launched and all(m.ready for m in workers.values())
    assert all(result.value == "CONTINUE" for _iid, result, _done in hard.fleet.completions)
