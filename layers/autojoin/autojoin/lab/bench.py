"""``autojoin lab bench``: what the real-swarm lab measures on this machine (reported, never asserted).

1. lab start: bare daemons for every node, ready to answer.
2. join latency per node: through autojoin (the token read from Secrets Manager, the node's hand-off
   ticket written, the node agent taking it and joining, the node labelled and seen Ready by a manager)
   beside a bare ``docker swarm join`` of a twin node into the same swarm.
3. quorum loss: a majority of managers killed (or cut off); time until a surviving manager reports
   "The swarm does not have a leader", then time until a leader is back once they return.
4. join latency through the handler path (when template.yaml is at hand): the local cloud launches the
   same managers and workers, and the real on_launch handler — idempotency record, group and instance
   lookups, cached token, hand-off, agent join, Ready check, labels, CompleteLifecycleAction — joins each
   into a fresh swarm of lab daemons. Wall time per on_launch invocation (path "handler").
5. guarded 5 -> 3 (``guard=True``): five managers joined through the handlers, the manager group set to 3;
   the termination policy, on_terminate and the guard's pass (every simulated minute, each pass working on
   the real swarm, every demotion awaited) take it down to one manager per AZ. Wall time until 3 managers
   are left in the swarm and in the group, and the simulated minutes (guard passes) it took.

AWS is moto, in this process; the bench uses its own lab (root and prefix), never the user's.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from autojoin.adapters.local.runner import LocalSocketRunner
from autojoin.adapters.swarm.orchestrator import SwarmOrchestrator
from autojoin.domain.model import Role
from autojoin.errors import NoLeader, OrchestratorError
from autojoin.lab import Lab, LabError, LabNode

BENCH_ROOT = "/tmp/autojoin-bench-lab"  # noqa: S108 - root-only lab state
BENCH_PREFIX = "ajb"
TABLE = "autojoin-bench-handoff"


@dataclass
class JoinTiming:
    node: str
    role: str
    az: str
    path: str  # "autojoin" (orchestrator + agent) | "bare" (docker swarm join) | "handler" (on_launch)
    ms: float


@dataclass
class BenchReport:
    managers: int
    workers: int
    zones: list[str]
    lab_start_ms: float = 0.0
    init_ms: float = 0.0
    joins: list[JoinTiming] = field(default_factory=list)
    quorum_loss_how: str = "kill"
    managers_lost: int = 0
    managers_total: int = 0
    quorum_loss_detect_s: float | None = None
    leader_back_s: float | None = None
    guard_5_to_3_s: float | None = None
    guard_5_to_3_minutes: int | None = None
    guard_5_to_3_layout: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path in ("handler", "autojoin", "bare"):
            values = [j.ms for j in self.joins if j.path == path]
            if values:
                out[path] = {"n": len(values), "median_ms": statistics.median(values), "max_ms": max(values)}
        return out

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def run_bench(
    managers: int = 3,
    workers: int = 2,
    zones: tuple[str, ...] = ("a", "b", "c"),
    *,
    how: str = "kill",
    lab: Lab | None = None,
    keep: bool = False,
    budget: float = 180.0,
    progress: Callable[[str], None] = lambda _msg: None,
    template: Path | None = Path("template.yaml"),
    guard: bool = False,
) -> BenchReport:
    if managers < 1:
        raise LabError("the bench needs at least one manager")
    if how not in ("kill", "cut"):
        raise LabError("--how is kill or cut")
    lab = lab or Lab(BENCH_ROOT, BENCH_PREFIX, stop_wait=5)
    report = BenchReport(managers, workers, list(zones), quorum_loss_how=how)
    roles = [Role.MANAGER] * managers + [Role.WORKER] * workers
    node_zones = [zones[i % len(zones)] for i in range(managers)] + [
        zones[i % len(zones)] for i in range(workers)
    ]
    # one autojoin node per role slot, and a bare twin for every slot but the first manager
    Lab.preflight()
    t0 = time.perf_counter()
    lab.down()
    slots: list[tuple[Role, str, LabNode, LabNode | None]] = []
    for i, (role, az) in enumerate(zip(roles, node_zones, strict=True)):
        auto = lab.add_node(az)
        twin = lab.add_node(az) if i > 0 else None
        slots.append((role, az, auto, twin))
    report.lab_start_ms = _ms(t0)
    progress(f"lab: {len(lab.nodes())} bare daemons ready in {report.lab_start_ms:.0f} ms")

    saved = {
        k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    fake = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(fake)  # moto's fake credentials, in this process only
    try:
        with mock_aws():
            db = boto3.client("dynamodb")
            sm = boto3.client("secretsmanager")
            db.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "principal", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "principal", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            secrets = {role: f"bench/{role.value}-token" for role in Role}
            for name in secrets.values():
                sm.create_secret(Name=name)
            env = {
                "AUTOJOIN_HANDOFF_TABLE": TABLE,
                "AUTOJOIN_MANAGER_SECRET_ID": secrets[Role.MANAGER],
                "AUTOJOIN_WORKER_SECRET_ID": secrets[Role.WORKER],
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            runner = LocalSocketRunner(lab.local_node, env=env)
            manager_nodes: list[LabNode] = []
            orch = SwarmOrchestrator(runner, lambda: [m.instance_id for m in manager_nodes])

            first = slots[0][2]
            t0 = time.perf_counter()
            first_id = orch.init(first.instance_id, first.address)
            manager_nodes.append(first)
            orch.label(first_id, {"instance-id": first.instance_id, "az": first.az})
            report.init_ms = _ms(t0)
            progress(f"init (agent: swarm init + both tokens to Secrets Manager): {report.init_ms:.0f} ms")

            for role, az, auto, twin in slots[1:]:
                # autojoin path: token from Secrets Manager -> hand-off row -> agent join -> label -> Ready
                t0 = time.perf_counter()
                token = sm.get_secret_value(SecretId=secrets[role])["SecretString"]
                db.put_item(
                    TableName=TABLE,
                    Item={
                        "principal": {"S": auto.principal},
                        "cluster": {"S": "bench"},
                        "role": {"S": role.value},
                        "token": {"S": token},
                        "managers": {"L": [{"S": m.manager_address} for m in manager_nodes]},
                        "expires_at": {"N": str(int(time.time()) + 600)},
                    },
                )
                node_id = orch.join(auto.instance_id, role)
                orch.label(node_id, {"instance-id": auto.instance_id, "az": az})
                member = orch.member(node_id)
                if not member.ready or member.role is not role:
                    report.notes.append(f"n{auto.number}: joined but not yet Ready as {role.value}")
                report.joins.append(JoinTiming(f"n{auto.number}", role.value, az, "autojoin", _ms(t0)))
                if role is Role.MANAGER:
                    manager_nodes.append(auto)
                # bare twin: only `docker swarm join` (token already in hand)
                assert twin is not None
                t0 = time.perf_counter()
                proc = lab.docker(
                    twin,
                    "swarm",
                    "join",
                    "--token",
                    token,
                    "--advertise-addr",
                    twin.address,
                    first.manager_address,
                )
                bare_ms = _ms(t0)
                if proc.returncode != 0:
                    raise LabError(f"bare join of n{twin.number} failed: {proc.stderr.strip()[-200:]}")
                report.joins.append(JoinTiming(f"n{twin.number}", role.value, az, "bare", bare_ms))
                if role is Role.MANAGER:
                    manager_nodes.append(twin)
                progress(
                    f"{role.value} in {az}: autojoin {report.joins[-2].ms:.0f} ms, bare join {bare_ms:.0f} ms"
                )

            _quorum_loss(
                lab,
                runner,
                orch,
                manager_nodes=manager_nodes,
                report=report,
                how=how,
                budget=budget,
                progress=progress,
            )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        if template is not None and template.is_file():
            _handler_joins(
                lab, report, roles=roles, node_zones=node_zones, template=template, progress=progress
            )
        else:
            report.notes.append(f"no {template}: join latency through the handler path not measured")
        if guard and template is not None and template.is_file():
            _guarded_scale_in(lab, report, template=template, progress=progress)
    finally:
        if not keep:
            lab.down()
    return report


def _handler_joins(
    lab: Lab,
    report: BenchReport,
    *,
    roles: list[Role],
    node_zones: list[str],
    template: Path,
    progress: Callable[[str], None],
) -> None:
    """Phase 4: the same cluster grown through the real on_launch handler on the local cloud."""
    from autojoin.lab.e2e import e2e_cloud  # the local cloud: only for this phase

    letters = sorted(set(node_zones))
    zones = tuple(f"us-east-1{chr(ord('a') + i)}" for i in range(len(letters)))  # the local cloud's AZs
    # every function the local cloud runs in this phase (provisioning's testSecret, the reconciler on launch
    # results, ...) logs JSON and EMF to the current stdout: none of it belongs in the report
    with (
        contextlib.redirect_stdout(io.StringIO()),
        e2e_cloud(lab, zones, cluster="bench", template=template) as kit,
    ):
        cloud = kit.cloud
        real = cloud._handler("OnLaunchFunction")  # the template's own handler module

        def timed(event: Any, context: Any, deps: Any) -> Any:
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the handler's JSON logs and EMF metrics
                result = real(event, context, deps=deps)
            if isinstance(result, dict) and result.get("instance_id"):
                node = kit.runner.nodes.get(str(result["instance_id"]))
                report.joins.append(
                    JoinTiming(
                        f"n{node.number}" if node else str(result["instance_id"]),
                        str(result.get("role")),
                        str(result.get("az")),
                        "handler",
                        _ms(t0),
                    )
                )
                progress(
                    f"on_launch {result.get('role')} in {result.get('az')}: {report.joins[-1].ms:.0f} ms "
                    f"({result.get('outcome')})"
                )
            return result

        cloud.register_handler("OnLaunchFunction", timed)
        for group, role in (
            (cloud.stack.manager_group, Role.MANAGER),
            (cloud.stack.worker_group, Role.WORKER),
        ):
            cloud.set_desired(group, roles.count(role))
            cloud.run_until_idle(1800)
        bad = [r for r in cloud.lifecycle_results if r.result != "CONTINUE"]
        if bad:
            report.notes.append(f"handler path: {len(bad)} launch(es) not CONTINUE")


class _WallClock:
    """Simulated now (the local cloud's), real waiting: each sleep also passes on the simulated clock (the
    removal's polls of the real swarm span real time), as tests/swarm/test_e2e_guard.py does."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    def now(self) -> Any:
        return self.sim.now()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        self.sim.sleep(seconds)


def _guarded_scale_in(
    lab: Lab, report: BenchReport, *, template: Path, progress: Callable[[str], None]
) -> None:
    """Phase 5: five managers through the handlers, then the group set to 3 with the guard at work."""
    from autojoin.lab.e2e import e2e_cloud

    zones = ("us-east-1a", "us-east-1b", "us-east-1c")
    with (
        contextlib.redirect_stdout(io.StringIO()),
        e2e_cloud(lab, zones, cluster="guard", template=template) as kit,
    ):
        cloud = kit.cloud
        group = cloud.stack.manager_group
        deps = cloud.deps_for("OnTerminateFunction")
        deps.__dict__["clock"] = _WallClock(cloud.clock)  # before anything of it is built
        cloud.set_desired(group, 5)
        cloud.run_until_idle(1800)
        cloud.enable_schedules()  # the guard's pass, every simulated minute

        def managers() -> list[Any]:
            return [m for m in kit.orchestrator.members() if m.role is Role.MANAGER]

        if len(managers()) != 5:
            report.notes.append(f"guarded 5 -> 3 not measured: {len(managers())} managers joined, not 5")
            return
        t0 = time.perf_counter()
        cloud.set_desired(group, 3)
        for minute in range(1, 31):
            cloud.advance(60)
            now = managers()
            if len(now) == 3 and sum(cloud.layout(group).values()) == 3:
                report.guard_5_to_3_s = round(time.perf_counter() - t0, 1)
                report.guard_5_to_3_minutes = minute
                report.guard_5_to_3_layout = dict(
                    sorted(Counter(m.labels.get("az", "?") for m in now).items())
                )
                break
        else:
            report.notes.append("guarded 5 -> 3: not done after 30 simulated minutes")
        progress(f"guarded 5 -> 3: {report.guard_5_to_3_s} s ({report.guard_5_to_3_minutes} guard passes)")


def _quorum_loss(
    lab: Lab,
    runner: LocalSocketRunner,
    orch: SwarmOrchestrator,
    *,
    manager_nodes: list[LabNode],
    report: BenchReport,
    how: str,
    budget: float,
    progress: Callable[[str], None],
) -> None:
    total = len(manager_nodes)
    lose = total // 2 + 1
    report.managers_total, report.managers_lost = total, lose
    if total < 2:
        report.notes.append("one manager: no quorum loss to measure without losing every manager")
        return
    victims = manager_nodes[total - lose :]
    survivors = manager_nodes[: total - lose]
    probe = SwarmOrchestrator(runner, lambda: [s.instance_id for s in survivors])
    t0 = time.perf_counter()
    for v in victims:
        if how == "kill":
            lab.kill(v)
        else:
            lab.cut(v)
    while time.perf_counter() - t0 < budget:
        try:
            probe.members()
        except NoLeader:
            report.quorum_loss_detect_s = round(time.perf_counter() - t0, 1)
            break
        except OrchestratorError:
            pass
        time.sleep(0.5)
    progress(f"quorum loss ({how} {lose}/{total} managers) reported after {report.quorum_loss_detect_s} s")
    t0 = time.perf_counter()
    for v in victims:
        if how == "kill":
            lab.start(v)
        else:
            lab.heal(v)
    while time.perf_counter() - t0 < budget:
        try:
            if any(m.leader for m in orch.members()):
                report.leader_back_s = round(time.perf_counter() - t0, 1)
                break
        except OrchestratorError:
            pass
        time.sleep(0.5)
    progress(f"leader back {report.leader_back_s} s after the managers returned")
