"""Faults on the real swarm (issue 13): the leader killed during a join, a demotion and a rotation; a
manager cut off from the network while it is being removed; a node agent that dies half way.

The real template and handlers run on the local cloud, the production SwarmOrchestrator reaches real
dockerd nodes of the lab through the lab's runner (as in test_e2e_guard.py). A fault is injected at the
named point by a tap on that runner: when a handler sends the matching command (``docker node demote``,
``autojoin-node join`` ...) the tap does the harm just before or just after the command runs, on the real
swarm:

* leader killed: the local cloud crashes the leader's instance (the kit SIGKILLs its dockerd and
  containerd), then the group's health check replaces it — the machine died, as on EC2;
* cut off: ``ip link set <node>-h down`` in the lab's hub namespace (``Lab.cut``); the runner cannot reach
  it either, as SSM could not;
* agent dies half way: the in-process node agent is stopped at a real point of its own code (after it took
  its ticket, or after the daemon accepted the join) by an exception no handler catches, and the runner
  reports what SSM reports for a killed command: exit 137, no output;
* (one more of the same kind) the handler dies half way: ``FunctionKilled`` from localcloud/faults.py
  right after the node joined, before it is labelled (a Lambda timeout); Lambda's retries and the
  reconciler follow.

Then each test checks what the docs say the handler does (retry, defer with a heartbeat, ABANDON) and that
the swarm ends consistent with the groups: managers = the manager group's InService instances, all Ready
and reachable voters, one leader; workers = the worker group's InService instances, all Ready; nothing
else (no Down node, no unlabelled node). One cluster for the module, worked in file order.

Swarm state changes are polled within generous budgets; nothing here asserts a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from autojoin.domain.model import Role
from autojoin.errors import OrchestratorError
from autojoin.lab import Lab
from autojoin.lab.e2e import E2E, e2e_cloud
from autojoin.localcloud.faults import FaultPlan, FunctionKilled, install
from autojoin.node import agent
from autojoin.ports import Clock, CommandResult, CommandRunner

from .swarm_support import BUDGET, eventually

# Real seconds a settle may take before it fails: more than the other real-swarm tests' budget, because a
# killed leader makes every command the handlers send to it wait for its connection to fail, and a slower
# machine than this one (CI) multiplies that. Only a run that would never settle pays it.
SETTLE_BUDGET = 2 * BUDGET

pytestmark = pytest.mark.swarm
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
FUNCTIONS = ("OnLaunchFunction", "OnTerminateFunction", "ReconcileFunction")


class WallClock(Clock):
    """Simulated now (the local cloud's), real waiting: each sleep also passes on the simulated clock, so a
    handler's polls of the real swarm (Ready, demotion in Raft, Down before rm) span real time."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    def now(self) -> Any:
        return self.sim.now()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        self.sim.sleep(seconds)


class AgentKilled(BaseException):
    """The node agent's process is killed: nothing in the agent (or a handler) catches this."""


@dataclass
class Fault:
    """Do ``harm`` once, before (or ``after``) the first command whose argv holds all of ``words``."""

    words: tuple[str, ...]
    harm: Callable[[str], None]  # gets the instance id the command was sent to
    after: bool = False
    fired_on: str | None = None
    at: int = 0  # how many commands had been sent when it fired


@dataclass
class Tap(CommandRunner):
    """The lab's runner with faults at chosen commands (what the handler sends, in order, is kept)."""

    inner: CommandRunner
    faults: list[Fault] = field(default_factory=list)
    sent: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)  # (instance, argv, how)

    def arm(self, *words: str, harm: Callable[[str], None], after: bool = False) -> Fault:
        fault = Fault(words, harm, after)
        self.faults.append(fault)
        return fault

    def run(self, instance_id: str, argv: Sequence[str], *, timeout: float = 60.0) -> CommandResult:
        due = [f for f in self.faults if f.fired_on is None and all(w in argv for w in f.words)]
        for f in due:
            f.fired_on, f.at = instance_id, len(self.sent)
            self.faults.remove(f)
        for f in due:
            if not f.after:
                f.harm(instance_id)
        how, t0 = "killed", time.monotonic()
        try:
            result = self.inner.run(instance_id, argv, timeout=timeout)
            how = f"exit {result.exit_code}: {result.stderr.strip()[:80]} {result.stdout.strip()[-80:]}"
            return result
        except AgentKilled:
            return CommandResult(137, "", "")  # SSM: the command's process was killed, it printed nothing
        except Exception as exc:
            how = type(exc).__name__
            raise
        finally:
            self.sent.append((instance_id, tuple(argv), f"{how} [{time.monotonic() - t0:.1f} s]"))
            for f in due:
                if f.after:
                    f.harm(instance_id)


@pytest.fixture(scope="module")
def kit(lab: Lab) -> Iterator[E2E]:
    with e2e_cloud(lab, ZONES, cluster="faults", seed=13, template=TEMPLATE) as k:
        for fn in FUNCTIONS:  # before anything of them is built
            k.cloud.deps_for(fn).__dict__["clock"] = WallClock(k.cloud.clock)
        assert k.runner.inner is not None
        k.runner.inner = Tap(k.runner.inner)
        install(k.cloud, FaultPlan())  # no AWS faults: only a FunctionKilled counts as the run dying
        cloud = k.cloud
        cloud.set_desired(cloud.stack.manager_group, 3)
        cloud.run_until_idle(1800)
        cloud.set_desired(cloud.stack.worker_group, 1)
        cloud.run_until_idle(1800)
        cloud.enable_schedules()  # the guard's pass every minute, the reconciler's every five
        yield k


@pytest.fixture(autouse=True)
def disarm(kit: E2E) -> Iterator[None]:
    """A fault a test armed and never fired must not fire in the next test."""
    yield
    tap(kit).faults.clear()


@pytest.fixture(autouse=True)
def consistent_start(kit: E2E, disarm: None) -> None:
    """Every test starts from a cluster consistent with its groups. One cluster serves the module, so a test
    that failed before its cluster settled would otherwise hand the next one a swarm it cannot survive (a
    second leader killed while the first is still a voter loses quorum), and every later test would fail
    for the first one's reason. The cluster is given time to settle first; if it does not, this test fails
    saying so, and the first failure is the one to read."""
    problem = inconsistency(kit) or "; ".join(waiting_actions(kit))
    if problem:
        try:
            settle(kit)
        except AssertionError as exc:
            pytest.fail(f"an earlier test left the cluster inconsistent ({problem}), not recovered: {exc}")


def tap(kit: E2E) -> Tap:
    assert isinstance(kit.runner.inner, Tap)
    return kit.runner.inner


DEAD_DAEMON = ("cannot connect to the docker daemon", "daemon_unreachable")


def met_the_dead(kit: E2E, fault: Fault, instance_id: str) -> list[str]:
    """Commands the handlers sent to ``instance_id`` after ``fault`` fired that found its daemon dead: the
    fault was in the handler's path (it had to go around the dead leader)."""
    return [
        " ".join(argv[:3])
        for iid, argv, how in tap(kit).sent[fault.at :]
        if iid == instance_id and any(sign in how.lower() for sign in DEAD_DAEMON)
    ]


# --- what the swarm and the groups look like -------------------------------------------------------------


def in_service(kit: E2E, group: str) -> set[str]:
    return {i.instance_id for i in kit.cloud.instances(group) if i.lifecycle_state == "InService"}


def inconsistency(kit: E2E) -> str:
    """'' when the swarm matches the groups (module docstring); else what does not match."""
    cloud = kit.cloud
    try:
        members = list(kit.orchestrator.members())
    except OrchestratorError as exc:
        return f"no member list: {type(exc).__name__}"
    want_m = in_service(kit, cloud.stack.manager_group)
    want_w = in_service(kit, cloud.stack.worker_group)
    problems = []
    unlabelled = [m.node_id for m in members if not m.labels.get("instance-id")]
    if unlabelled:
        problems.append(f"unlabelled nodes {unlabelled}")
    voters = [m for m in members if m.role is Role.MANAGER or m.in_raft]
    got_m = {m.labels.get("instance-id", m.node_id) for m in voters}
    got_w = {m.labels.get("instance-id", m.node_id) for m in members if m not in voters}
    if got_m != want_m:
        problems.append(f"managers {sorted(got_m)} != group {sorted(want_m)}")
    if got_w != want_w:
        problems.append(f"workers {sorted(got_w)} != group {sorted(want_w)}")
    down = [f"{m.labels.get('instance-id', m.node_id)} ({m.role.value})" for m in members if not m.ready]
    if down:
        problems.append(f"Down nodes {down}")
    unreachable = [m.labels.get("instance-id", m.node_id) for m in voters if not m.reachable]
    if unreachable:
        problems.append(f"unreachable voters {unreachable}")
    if sum(m.leader for m in voters) != 1:
        problems.append("not exactly one leader")
    return "; ".join(problems)


def leader(kit: E2E) -> str:
    return next(m.instance_id or "" for m in kit.orchestrator.members() if m.leader)


def settle(kit: E2E, budget: float = SETTLE_BUDGET) -> list[bool]:
    """Simulated minutes (the schedules and whatever they set off on the real swarm), a second or two of
    real time apart (the real swarm lives in real time), until the swarm is consistent with the groups and
    no lifecycle action waits; returns, per minute, whether the swarm had a leader. Never asserts time:
    ``budget`` real seconds only bound a run that would never settle."""
    seen: list[bool] = []
    deadline = time.monotonic() + budget
    while True:
        kit.cloud.advance(60)
        try:
            seen.append(any(m.leader for m in kit.orchestrator.members()))
        except OrchestratorError:
            seen.append(False)
        last = inconsistency(kit) or "; ".join(waiting_actions(kit))
        if not last:
            return seen
        if time.monotonic() > deadline:
            recent = [(i.function, i.result) for i in kit.cloud.invocations[-6:]]
            sent = [f"{iid} {' '.join(argv[:3])}: {how}" for iid, argv, how in tap(kit).sent[-10:]]
            kept = [
                (d["instance_id"], d.get("reason"))
                for d in decisions(kit, FUNCTIONS, 0)
                if d["outcome"] in {"retained", "abandoned"}
            ]
            raise AssertionError(
                f"not consistent after {len(seen)} simulated minutes ({budget:.0f} s): {last}; leader per "
                f"minute {seen[-12:]}; retained or abandoned (why): {kept}; last commands to the swarm: "
                f"{sent}; last invocations: {recent}"
            )
        time.sleep(2)


def waiting_actions(kit: E2E) -> list[str]:
    """Instances of either group still in a lifecycle wait (Pending:Wait, Terminating:Wait)."""
    cloud = kit.cloud
    return [
        f"{i.instance_id} {i.lifecycle_state}"
        for g in (cloud.stack.manager_group, cloud.stack.worker_group)
        for i in cloud.instances(g)
        if (i.lifecycle_state or "").endswith(":Wait")
    ]


def decisions(kit: E2E, function: str | tuple[str, ...], since: int) -> list[dict[str, Any]]:
    """Every decision a function's invocations made since invocation ``since`` (nested ones too: a launch's
    ``also_joined``, a removal's ``also``, a guard pass's ``resumed``, the reconciler's launch results)."""
    out: list[dict[str, Any]] = []

    def walk(d: Any) -> None:
        if isinstance(d, dict):
            if "outcome" in d and "instance_id" in d:
                out.append(d)
            for v in d.values():
                walk(v)
        elif isinstance(d, list):
            for v in d:
                walk(v)

    for inv in kit.cloud.invocations[since:]:
        if inv.function in ((function,) if isinstance(function, str) else function):
            walk(inv.result)
    return out


def completions(kit: E2E, instance_id: str, kind: str) -> list[str]:
    """How the instance's LAUNCHING or TERMINATING lifecycle actions finished (CONTINUE / ABANDON)."""
    return [
        r.result
        for r in kit.cloud.lifecycle_results
        if r.instance_id == instance_id and r.transition.endswith(kind)
    ]


def lagging_count_waits(kit: E2E, since: int) -> list[str]:
    """Removals that waited because the swarm's health count lagged EC2 and Auto Scaling (the guard's
    rule against retaining on a lagging count, services/removal.py), since invocation ``since``."""
    return [
        d["instance_id"]
        for d in decisions(kit, ("OnTerminateFunction", "ReconcileFunction"), since)
        if "the count lags" in str(d.get("reason"))
    ]


def observe(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Reported, not asserted: which documented path the real swarm took this time."""
    with capsys.disabled():
        print(f"\n[faults] {text}")


def crash(kit: E2E) -> Callable[[str], None]:
    """The harm 'the leader dies': its instance crashes (its dockerd is SIGKILLed by the kit)."""

    def harm(_sent_to: str) -> None:
        kit.cloud.crash_instance(leader(kit))

    return harm


def test_the_cluster_starts_consistent(kit: E2E) -> None:
    assert inconsistency(kit) == ""
    assert len(in_service(kit, kit.cloud.stack.manager_group)) == 3


# --- the leader killed during a join -------------------------------------------------------------------


@pytest.mark.parametrize("after", [False, True], ids=["before the node joins", "while it waits for Ready"])
def test_leader_killed_during_a_join(kit: E2E, capsys: pytest.CaptureFixture[str], after: bool) -> None:
    """Documented (docs/architecture.md, 'Which launch failures ABANDON, and which wait'): the cluster, not
    the instance, is at fault — the launch joins (the agent tries the next manager, the handler's reads go
    to the next manager) or waits with its hook kept alive and is finished later; it is never abandoned.
    The dead leader's instance is replaced and its Down voter removed."""
    cloud = kit.cloud
    group = cloud.stack.worker_group
    old_leader = leader(kit)
    before = in_service(kit, group)
    since = len(cloud.invocations)
    fault = tap(kit).arm("autojoin-node", "join", harm=crash(kit), after=after)
    cloud.set_desired(group, len(before) + 1)
    seen = settle(kit)
    assert fault.fired_on is not None, "no join was sent: the fault never fired"
    assert met_the_dead(kit, fault, old_leader), "no handler met the dead leader: the fault missed the path"
    new = fault.fired_on
    assert new not in before
    launch = [d for d in decisions(kit, "OnLaunchFunction", since) if d["instance_id"] == new]
    assert launch and launch[0]["outcome"] in {"joined", "pending"}, launch
    assert all(d["outcome"] != "abandoned" for d in launch), launch
    assert completions(kit, new, "LAUNCHING") == ["CONTINUE"]
    assert new in in_service(kit, group)
    assert old_leader not in in_service(kit, cloud.stack.manager_group)  # replaced
    assert seen[-1]
    met = met_the_dead(kit, fault, old_leader)
    observe(capsys, f"join: {[d['outcome'] for d in launch]}; went around the dead leader for {met}")
    observe(capsys, f"join: removals that waited on a lagging count: {lagging_count_waits(kit, since)}")
    slow = [
        (" ".join(a[:3]), h[-9:])
        for _i, a, h in tap(kit).sent[fault.at :]
        if float(h.rsplit("[", 1)[1].split()[0]) > 3
    ]
    observe(capsys, f"join: commands over 3 s after the fault: {slow}")


# --- the leader killed during a demotion ---------------------------------------------------------------


def test_leader_killed_during_a_demotion(kit: E2E, capsys: pytest.CaptureFixture[str]) -> None:
    """Documented (services/removal.py, docs/real-swarm.md 'SwarmOrchestrator'): the adapter goes around a
    manager that does not answer (the next candidate); a removal the swarm stops answering (NoLeader,
    Unreachable) waits — recorded, hook kept alive — and the guard's pass finishes it once a leader is
    back. Either way the victim ends demoted, out of Raft, left and removed (CONTINUE), never retained; the
    dead leader is replaced and no Down voter is left."""
    cloud = kit.cloud
    group = cloud.stack.manager_group
    cloud.set_desired(group, 4)
    settle(kit)
    current = leader(kit)
    victim = sorted(in_service(kit, group) - {current})[0]
    since = len(cloud.invocations)
    fault = tap(kit).arm("node", "demote", harm=crash(kit), after=True)
    cloud.terminate_instance(victim, decrement=True)
    seen = settle(kit)
    assert fault.fired_on is not None, "no demotion was sent: the fault never fired"
    assert met_the_dead(kit, fault, current), "no handler met the dead leader: the fault missed the path"
    mine = [d for d in decisions(kit, "OnTerminateFunction", since) if d["instance_id"] == victim]
    outcomes = [d["outcome"] for d in mine]
    assert outcomes and outcomes[-1] == "removed" and set(outcomes) <= {"waiting", "removed"}, mine
    assert mine[-1]["steps"][-2:] in (["leave", "rm"], ["leave-skipped-unreachable", "rm"]), mine[-1]
    assert completions(kit, victim, "TERMINATING") == ["CONTINUE"]
    assert current not in in_service(kit, group)
    assert len(in_service(kit, group)) == 3
    assert seen[-1]
    observe(capsys, f"demotion: {outcomes}, steps {mine[-1]['steps']}; leader per minute {seen}")
    observe(capsys, f"demotion: removals that waited on a lagging count: {lagging_count_waits(kit, since)}")


# --- the leader killed during a rotation ---------------------------------------------------------------


def rotate(kit: E2E, secret: str, version: str) -> list[str]:
    """Secrets Manager's four steps; a failed step is invoked again with the same ClientRequestToken once
    the cluster has a leader (Secrets Manager retries a failed rotation with it). Returns the failures."""
    cloud = kit.cloud
    arn = cloud.stack.physical[secret]["Ref"]
    fn = cloud.stack.function_for_arn(cloud.stack.rotations[str(arn)])
    assert fn is not None, f"no rotation function for {secret}"
    failed: list[str] = []
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        for _attempt in range(3):
            try:
                cloud.invoke(fn, {"SecretId": arn, "ClientRequestToken": version, "Step": step})
                break
            except Exception as exc:
                failed.append(f"{step}: {type(exc).__name__}")
                eventually(lambda: leader(kit), what="a leader again")
        else:
            raise AssertionError(f"{step} failed three times: {failed}")
    return failed


def test_leader_killed_during_a_rotation(kit: E2E, capsys: pytest.CaptureFixture[str]) -> None:
    """Documented (docs/token-delivery.md, 'Rotation that cannot strand joins'): the step goes around the
    dead leader to a manager that answers; a step that fails anyway is retried with the same version and
    never rotates blind. In the end AWSCURRENT is exactly the token the swarm accepts, the old one is
    dead, no AWSPENDING is left, and a launch joins with it."""
    cloud = kit.cloud
    old = kit.token(Role.WORKER)
    old_leader = leader(kit)
    fault = tap(kit).arm("autojoin-node", "rotate", harm=crash(kit))
    version = "f0f0f0f0-0000-4000-8000-000000000013"
    failed = rotate(kit, "WorkerTokenSecret", version)
    assert fault.fired_on is not None, "no rotate was sent: the fault never fired"
    assert met_the_dead(kit, fault, old_leader), "the rotation never met the dead leader"
    settle(kit)
    new = kit.token(Role.WORKER)
    held = kit.lab.docker(kit.node(leader(kit)), "swarm", "join-token", "-q", "worker").stdout.strip()
    assert new == held and new != old, f"failed steps: {failed}"
    sm = cloud.session.client("secretsmanager")
    arn = cloud.stack.physical["WorkerTokenSecret"]["Ref"]
    stages = [s for v in sm.list_secret_version_ids(SecretId=arn)["Versions"] for s in v["VersionStages"]]
    assert "AWSPENDING" not in stages
    group = cloud.stack.worker_group
    before = in_service(kit, group)
    since = len(cloud.lifecycle_results)
    cloud.set_desired(group, len(before) + 1)
    settle(kit)
    launched = [r for r in cloud.lifecycle_results[since:] if r.group == group]
    assert [r.result for r in launched] == ["CONTINUE"]
    observe(capsys, f"rotation: failed steps (retried) {failed}")


# --- a manager cut off while it is being removed ---------------------------------------------------------


def test_manager_cut_off_while_it_is_removed(kit: E2E, capsys: pytest.CaptureFixture[str]) -> None:
    """Documented (services/removal.py): the demotion goes through the leader; a node that cannot be
    reached skips its leave (it goes Down by itself) and is removed once Down, or by the dead-node cleanup.
    CONTINUE; the swarm keeps its quorum and ends with the group's managers only."""
    cloud = kit.cloud
    group = cloud.stack.manager_group
    cloud.set_desired(group, 4)
    settle(kit)
    victim = sorted(in_service(kit, group) - {leader(kit)})[0]
    node = kit.node(victim)
    since = len(cloud.invocations)
    fault = tap(kit).arm("node", "demote", harm=lambda _i: kit.lab.cut(node))
    try:
        cloud.terminate_instance(victim, decrement=True)
        seen = settle(kit)
    finally:
        kit.lab.heal(node)
    assert fault.fired_on is not None, "no demotion was sent: the fault never fired"
    mine = [d for d in decisions(kit, "OnTerminateFunction", since) if d["instance_id"] == victim]
    assert mine and mine[-1]["outcome"] == "removed", mine
    assert "leave-skipped-unreachable" in mine[-1]["steps"], mine[-1]
    assert completions(kit, victim, "TERMINATING") == ["CONTINUE"]
    assert all(seen), "the swarm lost its leader while a cut-off manager was removed"
    observe(capsys, f"cut off: {[d['outcome'] for d in mine]}, steps {mine[-1]['steps']}")


# --- a node agent that dies half way -------------------------------------------------------------------


def die_after(
    monkeypatch: pytest.MonkeyPatch, name: str, when: Callable[..., bool], killed: list[str]
) -> Callable[[str], None]:
    """The harm 'the agent dies': the agent's own ``name`` runs, then (the first time ``when`` holds for
    its arguments) the agent's process is killed; ``killed`` records on which instance."""

    def harm(sent_to: str) -> None:
        real = getattr(agent, name)

        def then_die(*args: Any, **kwargs: Any) -> Any:
            value = real(*args, **kwargs)
            if when(*args, **kwargs):
                monkeypatch.setattr(agent, name, real)
                killed.append(sent_to)
                raise AgentKilled
            return value

        monkeypatch.setattr(agent, name, then_die)

    return harm


@pytest.mark.parametrize(
    ("point", "name", "when", "result"),
    [
        ("after it took its ticket", "take_ticket", lambda *a, **k: True, "ABANDON"),
        (
            "after the daemon accepted the join",
            "_api",
            lambda _ctx, _method, url, *a, **k: url == "/swarm/join",
            "CONTINUE",
        ),
    ],
)
def test_node_agent_dies_half_way_through_a_join(
    kit: E2E,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
    name: str,
    when: Callable[..., bool],
    result: str,
) -> None:
    """Documented (services/launch.py, adapters/swarm/orchestrator.py ``join``): the agent gave no answer,
    so the node's daemon is asked. Not in a swarm (it died after taking its ticket): the join failed for
    the instance's own reason, ABANDON, the group replaces the instance. In the swarm (it died after the
    daemon joined): the join happened, the node is verified, labelled and the launch completes CONTINUE —
    before this was handled, the instance was abandoned and its node stayed in the swarm, Down and
    unlabelled, for good. Either way no ticket is left and the swarm ends consistent with the group."""
    cloud = kit.cloud
    group = cloud.stack.worker_group
    before = in_service(kit, group)
    since = len(cloud.invocations)
    killed: list[str] = []
    fault = tap(kit).arm("autojoin-node", "join", harm=die_after(monkeypatch, name, when, killed))
    cloud.set_desired(group, len(before) + 1)
    settle(kit)
    assert fault.fired_on is not None, f"no join was sent: the agent never died {point}"
    first = fault.fired_on
    assert killed == [first], f"the agent was not killed {point}"
    launch = [d for d in decisions(kit, "OnLaunchFunction", since) if d["instance_id"] == first]
    assert launch, "the handler made no decision for the instance whose agent died"
    assert completions(kit, first, "LAUNCHING") == [result], launch
    assert (first in in_service(kit, group)) is (result == "CONTINUE")
    if result == "CONTINUE":
        member = next(m for m in kit.orchestrator.members() if m.labels.get("instance-id") == first)
        assert member.node_id == launch[0]["node_id"] and member.ready
    handoff = cloud.stack.physical["HandoffTable"]["Ref"]
    assert cloud.session.client("dynamodb").scan(TableName=handoff)["Count"] == 0
    assert len(in_service(kit, group)) == len(before) + 1


# --- the handler dies half way through a join (after the node joined, before it is labelled) -------------


def test_handler_dies_after_the_node_joined_and_the_join_is_finished_later(
    kit: E2E, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not one of the issue's five, the same kind: OnLaunchFunction dies (a Lambda timeout) right after the
    node joined, before it labelled it. The next try (Lambda's retry, or the reconciler's pass for a
    launch left waiting) offers a ticket and the node says it is already in a swarm. Documented
    (services/launch.py): the node's daemon is asked which node it is; an unlabelled member of the right
    role is taken, labelled, CONTINUE. Before this was handled the next try ABANDONed the instance and its
    node stayed in the swarm, Down and unlabelled, for good."""
    cloud = kit.cloud
    group = cloud.stack.worker_group
    before = in_service(kit, group)
    since = len(cloud.invocations)

    def die(_sent_to: str) -> None:
        raise FunctionKilled("OnLaunchFunction timed out after the join")

    fault = tap(kit).arm("autojoin-node", "join", harm=die, after=True)
    cloud.set_desired(group, len(before) + 1)
    settle(kit)
    assert fault.fired_on is not None, "no join was sent: the handler never died"
    new = fault.fired_on
    runs = [i for i in cloud.invocations[since:] if i.function == "OnLaunchFunction"]
    assert runs[0].error_type == "FunctionCrashed", runs[0]
    # Lambda's retries (their idempotency record of the dead run is still in progress) or the reconciler
    finishers = ("OnLaunchFunction", "ReconcileFunction")
    launch = [d for d in decisions(kit, finishers, since) if d["instance_id"] == new]
    assert [d["outcome"] for d in launch] == ["already_member"], launch
    assert completions(kit, new, "LAUNCHING") == ["CONTINUE"]
    member = next(m for m in kit.orchestrator.members() if m.labels.get("instance-id") == new)
    assert member.node_id == launch[0]["node_id"] and member.ready and member.role is Role.WORKER
    observe(capsys, f"handler died: runs {[(i.attempt, i.error_type) for i in runs]}; then {launch}")
