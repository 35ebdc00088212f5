"""Differential test: the same scripted scenario against SimSwarm and against a real Docker Swarm.

SimSwarm's fidelity is measured, not assumed: one scenario (bootstrap, manager and worker joins through
hand-off tickets, labels, drain, refusals, graceful removal, last-manager rules, token rotation, losing
and regaining a majority) runs first on SimSwarm, then on the real lab through SwarmOrchestrator +
LocalSocketRunner + the node agent (tokens through moto's Secrets Manager and hand-off table). Both runs
record, step by step, either the outcome of a change ("ok" or the project's error type) or the
membership as the port reports it (who, role, Ready, Active, reachable, address, labels, number of
leaders: node ids and the leader's identity are the implementations' own). The two records must be
equal, and the simulated one must also match the Swarm rules the scenario states.

The real swarm is eventually consistent (Down after ~10 s, NoLeader 10-40 s after a majority goes, a
leader back 1-65 s after a heal): a membership observation on the lab is polled until it equals the
simulation's (within a budget), never timed. A change is done once on each side and its outcome compared
as is. Needs root and Debian's docker.io (installed when missing); it FAILS when the lab cannot start.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from pydantic import SecretStr

from autojoin.adapters.local.runner import LocalSocketRunner
from autojoin.adapters.sim import SimClock, SimSwarm
from autojoin.adapters.swarm.orchestrator import SwarmOrchestrator
from autojoin.domain.model import Role
from autojoin.errors import AutojoinError
from autojoin.lab import Lab, LabError, LabNode
from autojoin.ports import JoinTicket, Orchestrator

pytestmark = pytest.mark.swarm

# its own lab, per process: no other test's, user's or concurrent run's lab is touched
LAB_PREFIX = f"ajd{os.getpid() % 10000}"  # namespace/veth names: "<prefix>-n11-h" must fit in 15 characters
LAB_ROOT = f"/tmp/autojoin-diff-lab-{LAB_PREFIX}"
LAB_NET = "10.201.0"
TABLE = "autojoin-diff-handoff"
CLUSTER = "diff"
BUDGET = 150.0  # seconds of polling for one observation on the real swarm
SIM_BUDGET = 300  # simulated seconds of waiting for one observation on SimSwarm
NAMES = ("m1", "m2", "m3", "w1", "w2", "w3")
AZ_NAMES = ("a1", "a2", "b1", "b2", "c1")
ZONES = {"m1": "a", "m2": "b", "m3": "c", "w1": "a", "w2": "b", "w3": "c"} | {n: n[0] for n in AZ_NAMES}
V2 = str(uuid.UUID(int=2))  # Secrets Manager version ids are 32-64 characters

# What the scenario states about Swarm, checked on the simulation's record (the lab must then agree).
RULES = {
    "init m1": "ok",
    "join m2 as manager": "ok",
    "join w1 as worker": "ok",
    "join w1 again": "AlreadyInSwarm",
    "remove m2 (a manager)": "MustDemoteFirst",
    "leave m2 (a manager)": "MustDemoteFirst",
    "demote m3": "ok",
    "remove w2 right after it left": "NodeNotDown",
    "remove w2 once Down": "ok",
    "remove w2 again (already gone)": "ok",
    "demote m1 (the last manager)": "LastManager",
    "leave m1 (the last manager)": "LastManager",
    "rotate the worker token": "ok",
    "worker token works (pending v2)": True,
    "manager token works (pending v2)": False,
    "join w3 with the old worker token": "InvalidJoinToken",
    "join w3 with the rotated worker token": "ok",
    "members after cutting m2 and m3 off": "NoLeader",
}


def outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except AutojoinError as exc:
        return type(exc).__name__
    return "ok"


# --- the two worlds -------------------------------------------------------------------------------


class Backend(ABC):
    """One implementation of the port plus what the scenario needs around it (hand-off, vault, network)."""

    name: str
    orch: Orchestrator

    def __init__(self, nodes: dict[str, LabNode], managers: tuple[str, ...], cluster: str) -> None:
        self.nodes = nodes
        self.manager_names = managers  # the nodes the control plane asks first (and puts in tickets)
        self.cluster = cluster
        self.node_names: dict[str, str] = {}  # node id -> scenario name
        self.transients: list[str] = []  # what a real swarm showed on its way to the final observation

    def iid(self, name: str) -> str:
        return self.nodes[name].instance_id

    @abstractmethod
    def offer(self, name: str, role: Role, token: str | None = None) -> None:
        """Write the node's hand-off ticket (the current token of ``role`` unless one is given)."""

    @abstractmethod
    def token(self, role: Role, version_id: str | None = None) -> str:
        """The vault's current token of ``role`` (or its pending ``version_id``; "" when there is none)."""

    @abstractmethod
    def cut(self, name: str) -> None: ...

    @abstractmethod
    def heal(self, name: str) -> None: ...

    @abstractmethod
    def settle(self, observe: Callable[[], Any], expected: Any) -> Any:
        """Observe; on a real swarm, poll until the observation equals ``expected`` (or the budget ends)."""

    def view(self) -> Any:
        """Membership as the port reports it, or the error type when it cannot."""
        try:
            members = self.orch.members()
        except AutojoinError as exc:
            return type(exc).__name__
        rows = sorted(
            (
                self.node_names.get(m.node_id, "?"),
                m.role.value,
                m.ready,
                m.available,
                m.reachable,
                m.address,
                tuple(sorted(m.labels.items())),
            )
            for m in members
        )
        return {"members": rows, "leaders": sum(1 for m in members if m.leader)}

    def node_id_of(self, name: str) -> str:
        return next(nid for nid, n in self.node_names.items() if n == name)

    def manager_addresses(self) -> list[str]:
        """What on_launch puts in a ticket: the managers' addresses (here: every m* node that joined)."""
        joined = set(self.node_names.values())
        return [self.nodes[n].manager_address for n in self.manager_names if n in joined]

    @abstractmethod
    def pause(self, seconds: float) -> None:
        """Let simulated time pass (SimSwarm); a real swarm is polled by ``settle`` instead."""


class SimBackend(Backend):
    name = "sim"

    def __init__(self, nodes: dict[str, LabNode], managers: tuple[str, ...], cluster: str) -> None:
        super().__init__(nodes, managers, cluster)
        self.clock = SimClock()
        self.tickets: dict[str, JoinTicket] = {}
        self.current: dict[Role, SecretStr] = {}
        self.pending: dict[tuple[Role, str], SecretStr] = {}
        by_iid = {n.instance_id: n for n in nodes.values()}
        self.swarm = SimSwarm(
            self.clock,
            take_ticket=lambda iid: self.tickets.pop(iid, None),  # read-once
            store_token=self._store,
            address_of=lambda iid: by_iid[iid].address,
            read_pending=lambda role, version: self.pending.get((role, version)),
        )
        self.orch = self.swarm

    def _store(self, role: Role, token: SecretStr, version_id: str | None) -> None:
        if version_id is None:
            self.current[role] = token
        else:
            self.pending[(role, version_id)] = token

    def offer(self, name: str, role: Role, token: str | None = None) -> None:
        self.tickets[self.iid(name)] = JoinTicket(
            role,
            SecretStr(token) if token is not None else self.current[role],
            tuple(self.manager_addresses()),
            self.cluster,
        )

    def token(self, role: Role, version_id: str | None = None) -> str:
        secret = self.current.get(role) if version_id is None else self.pending.get((role, version_id))
        return "" if secret is None else secret.get_secret_value()

    def pause(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def cut(self, name: str) -> None:
        self.swarm.partition([self.iid(name)])  # like the lab: each cut node alone

    def heal(self, name: str) -> None:
        self.swarm.heal([self.iid(name)])

    def settle(self, observe: Callable[[], Any], expected: Any) -> Any:
        value = observe()
        waited = 0
        while expected is not None and value != expected and waited < SIM_BUDGET:
            self.clock.advance(1)  # e.g. a node that left shows Down after the delay
            waited += 1
            value = observe()
        return value


class LabBackend(Backend):
    name = "lab"

    def __init__(
        self,
        nodes: dict[str, LabNode],
        managers: tuple[str, ...],
        cluster: str,
        lab: Lab,
        session: boto3.Session,
    ) -> None:
        super().__init__(nodes, managers, cluster)
        self.lab = lab
        self.session = session
        sm = session.client("secretsmanager")
        for role in Role:
            sm.create_secret(Name=self.secret_id(role))
        env = {
            "AUTOJOIN_HANDOFF_TABLE": TABLE,
            "AUTOJOIN_MANAGER_SECRET_ID": self.secret_id(Role.MANAGER),
            "AUTOJOIN_WORKER_SECRET_ID": self.secret_id(Role.WORKER),
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.runner = LocalSocketRunner(lab.local_node, env=env, session_factory=lambda: session)
        manager_ids = [self.iid(n) for n in managers]
        self.orch = SwarmOrchestrator(self.runner, lambda: manager_ids)

    def secret_id(self, role: Role) -> str:
        return f"{self.cluster}/{role.value}-token"

    def offer(self, name: str, role: Role, token: str | None = None) -> None:
        managers = [{"S": address} for address in self.manager_addresses()]
        self.session.client("dynamodb").put_item(
            TableName=TABLE,
            Item={
                "principal": {"S": self.nodes[name].principal},
                "cluster": {"S": self.cluster},
                "role": {"S": role.value},
                "token": {"S": token if token is not None else self.token(role)},
                "managers": {"L": managers},
                "expires_at": {"N": str(int(time.time()) + 600)},
            },
        )

    def token(self, role: Role, version_id: str | None = None) -> str:
        sm = self.session.client("secretsmanager")
        try:
            if version_id is None:
                resp = sm.get_secret_value(SecretId=self.secret_id(role))
            else:
                resp = sm.get_secret_value(SecretId=self.secret_id(role), VersionId=version_id)
        except ClientError:  # no such version (a rotation that did not happen): shows as a difference
            return ""
        return str(resp.get("SecretString", ""))

    def pause(self, seconds: float) -> None:
        pass  # the real swarm's time passes on its own: settle() polls

    def cut(self, name: str) -> None:
        self.lab.cut(self.nodes[name])

    def heal(self, name: str) -> None:
        self.lab.heal(self.nodes[name])

    def settle(self, observe: Callable[[], Any], expected: Any) -> Any:
        deadline = time.monotonic() + BUDGET
        first = value = observe()
        started = time.monotonic()
        while value != expected and time.monotonic() < deadline:
            time.sleep(1.0)
            value = observe()
        if first != value and value == expected:
            shown = first if isinstance(first, str | bool) else "another membership"
            self.transients.append(f"{shown} for ~{time.monotonic() - started:.0f} s")
        return value


# --- the scenarios --------------------------------------------------------------------------------


@dataclass
class Script:
    """Runs scenario steps on one backend and records what each step observed."""

    b: Backend
    reference: dict[str, Any] | None = None
    steps: list[tuple[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.steps)

    def add(self, step: str, value: Any) -> None:
        self.steps.append((step, value))

    def expected(self, step: str) -> Any:
        return None if self.reference is None else self.reference.get(step)

    def change(self, step: str, call: Callable[[], object]) -> None:
        """A change: done once, its outcome ("ok" or the error type) recorded."""
        self.add(step, outcome(call))

    def refusal(self, step: str, call: Callable[[], object]) -> None:
        """A change the swarm should refuse: a refusal changes nothing, so the real swarm may be polled
        until it settles (an accepted change is not retried: it would show as a difference anyway)."""
        self.observe(step, lambda: outcome(call))

    def observe(self, step: str, probe: Callable[[], Any], expected: Any = None) -> None:
        before = len(self.b.transients)
        self.add(step, self.b.settle(probe, self.expected(step) if expected is None else expected))
        self.b.transients[before:] = [f"{step}: {note}" for note in self.b.transients[before:]]

    def look(self, step: str) -> None:
        """The membership as the port reports it."""
        self.observe(step, self.b.view)

    def init(self, name: str) -> None:
        def call() -> None:
            node_id = self.b.orch.init(self.b.iid(name), self.b.nodes[name].address)
            self.b.node_names[node_id] = name

        self.change(f"init {name}", call)

    def join(self, step: str, name: str, role: Role, token: str | None = None) -> None:
        """Offer the node its hand-off ticket, then have it join."""
        self.b.offer(name, role, token)

        def call() -> None:
            node_id = self.b.orch.join(self.b.iid(name), role)
            self.b.node_names[node_id] = name

        self.change(step, call)

    def label(self, name: str) -> None:
        node = self.b.nodes[name]
        self.change(
            f"label {name}",
            lambda: self.b.orch.label(
                self.b.node_id_of(name), {"az": node.az, "instance-id": node.instance_id}
            ),
        )


def membership_scenario(b: Backend, reference: dict[str, Any] | None = None) -> Script:
    s = Script(b, reference)
    s.init("m1")
    s.look("after init")
    for name, role in (("m2", Role.MANAGER), ("m3", Role.MANAGER), ("w1", Role.WORKER), ("w2", Role.WORKER)):
        s.join(f"join {name} as {role.value}", name, role)
        s.look(f"after {name} joined")
    s.join("join w1 again", "w1", Role.WORKER)
    for name in ("m1", "m2", "m3", "w1", "w2"):
        s.label(name)
    s.change("drain w1", lambda: b.orch.drain(b.node_id_of("w1")))
    s.look("after labels and drain")

    s.change("remove m2 (a manager)", lambda: b.orch.remove(b.node_id_of("m2")))
    s.change("leave m2 (a manager)", lambda: b.orch.leave(b.iid("m2")))
    s.change("demote m3", lambda: b.orch.demote(b.node_id_of("m3")))
    s.look("after m3 demoted")

    s.change("leave w2", lambda: b.orch.leave(b.iid("w2")))
    s.change("remove w2 right after it left", lambda: b.orch.remove(b.node_id_of("w2")))
    b.pause(10)
    s.observe("w2 shows Down", lambda: not _ready(b, "w2"), expected=True)
    s.change("remove w2 once Down", lambda: b.orch.remove(b.node_id_of("w2")))
    s.change("remove w2 again (already gone)", lambda: b.orch.remove(b.node_id_of("w2")))
    s.look("after w2 removed")

    s.change("demote m2", lambda: b.orch.demote(b.node_id_of("m2")))
    s.look("after m2 demoted")
    s.refusal("demote m1 (the last manager)", lambda: b.orch.demote(b.node_id_of("m1")))
    s.refusal("leave m1 (the last manager)", lambda: b.orch.leave(b.iid("m1")))
    s.change("promote m2", lambda: b.orch.promote(b.node_id_of("m2")))
    s.change("promote m3", lambda: b.orch.promote(b.node_id_of("m3")))
    s.look("after m2 and m3 promoted")

    old_worker_token = b.token(Role.WORKER)
    s.change("rotate the worker token", lambda: b.orch.rotate_token(Role.WORKER, V2))
    s.add("worker token works (pending v2)", b.orch.token_works(Role.WORKER, V2))
    s.add("manager token works (pending v2)", b.orch.token_works(Role.MANAGER, V2))
    pending = b.token(Role.WORKER, V2)
    s.add("the pending worker token differs from the old one", pending not in ("", old_worker_token))
    s.join("join w3 with the old worker token", "w3", Role.WORKER, old_worker_token)
    s.join("join w3 with the rotated worker token", "w3", Role.WORKER, pending)
    s.label("w3")
    s.look("after w3 joined")

    b.cut("m2")
    b.cut("m3")
    s.look("members after cutting m2 and m3 off")
    # w2 left and was removed: a fresh join with the valid (rotated) token, and no leader to admit it.
    # (With the old token the real swarm answers InvalidJoinToken or NoLeader, depending on timing.)
    s.join("join w2 while m2 and m3 are cut off", "w2", Role.WORKER, pending)
    b.heal("m2")
    b.heal("m3")
    s.look("members after healing m2 and m3")
    return s


def az_scenario(b: Backend, reference: dict[str, Any] | None = None) -> Script:
    """Five managers as 2-2-1 over three AZs: each AZ cut off in turn; then the three of a 3-2 split."""
    s = Script(b, reference)
    s.init("a1")
    for name in AZ_NAMES[1:]:
        s.join(f"join {name} as manager", name, Role.MANAGER)
    for name in AZ_NAMES:
        s.label(name)
    s.look("five managers, 2-2-1 over a/b/c")
    for az in ("a", "b", "c"):
        cut = [n for n in AZ_NAMES if b.nodes[n].az == az]
        for name in cut:
            b.cut(name)
        b.pause(10)
        s.look(f"AZ {az} cut off")
        for name in cut:
            b.heal(name)
        s.look(f"AZ {az} healed")
    big = ("a1", "a2", "b1")  # the same five as 3-2 over two AZs: the bigger one goes
    for name in big:
        b.cut(name)
    s.look("the bigger AZ of a 3-2 layout cut off")
    for name in big:
        b.heal(name)
    s.look("the bigger AZ of a 3-2 layout healed")
    return s


def _ready(b: Backend, name: str) -> bool:
    try:
        members = b.orch.members()
    except AutojoinError:
        return True  # cannot tell: not Down yet as far as anyone can see
    node_id = b.node_id_of(name)
    return any(m.ready for m in members if m.node_id == node_id)


def table(steps: list[tuple[str, Any]], other: dict[str, Any]) -> str:
    lines = []
    for step, value in steps:
        mark = "  " if other.get(step) == value else "!!"
        lines.append(f"{mark} {step}: sim={value!r}")
        if mark == "!!":
            lines.append(f"   {' ' * len(step)}  lab={other.get(step)!r}")
    return "\n".join(lines)


def compare(sim: Script, real: Script) -> None:
    """Print what the real swarm said and how it got there; assert it equals the simulation, step by step."""
    observed = real.as_dict()
    transients = "\n  ".join(real.b.transients or ["none"])
    outcomes = "\n  ".join(f"{k}: {v}" for k, v in real.steps if not isinstance(v, dict))
    print(f"outcomes (real swarm):\n  {outcomes}\nreal swarm, transient observations:\n  {transients}")
    assert [s for s, _ in real.steps] == [s for s, _ in sim.steps]
    assert observed == sim.as_dict(), (
        "SimSwarm and the real swarm differ (!!):\n"
        + table(sim.steps, observed)
        + f"\nreal swarm, transient observations:\n  {transients}"
    )


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_nodes() -> Iterator[tuple[Lab, dict[str, LabNode]]]:
    lab = Lab(LAB_ROOT, LAB_PREFIX, LAB_NET, stop_wait=5)
    try:
        if os.geteuid() != 0:
            raise LabError("the differential test needs root (network namespaces, dockerd)")
        try:
            Lab.preflight()
        except LabError:
            lab.install()  # Debian's docker.io, iproute2, util-linux
        lab.up()
        nodes = {name: lab.add_node(ZONES[name]) for name in (*NAMES, *AZ_NAMES)}
    except (LabError, OSError, KeyError) as exc:
        lab_down_quietly(lab)
        pytest.fail(f"the real-swarm lab for the differential test cannot start: {exc}", pytrace=False)
    try:
        yield lab, nodes
    finally:
        lab.down()


def lab_down_quietly(lab: Lab) -> None:
    with contextlib.suppress(LabError, OSError):
        lab.down()


@pytest.fixture(scope="module")
def aws_session() -> Iterator[boto3.Session]:
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    try:
        with mock_aws():
            session = boto3.Session(region_name="us-east-1")
            session.client("dynamodb").create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "principal", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "principal", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            yield session
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- the tests ------------------------------------------------------------------------------------

Nodes = tuple[Lab, dict[str, LabNode]]
MEMBERSHIP_MANAGERS = ("m1", "m2", "m3")


def test_membership_refusals_and_rotation_agree_step_by_step(
    lab_nodes: Nodes, aws_session: boto3.Session
) -> None:
    lab, nodes = lab_nodes
    sim = membership_scenario(SimBackend(nodes, MEMBERSHIP_MANAGERS, "diff"))
    reference = sim.as_dict()
    broken = {
        step: (want, reference.get(step)) for step, want in RULES.items() if reference.get(step) != want
    }
    assert not broken, f"SimSwarm breaks the scenario's Swarm rules (step: (rule, sim)): {broken}"
    assert reference["w2 shows Down"] is True
    assert reference["the pending worker token differs from the old one"] is True

    real = membership_scenario(LabBackend(nodes, MEMBERSHIP_MANAGERS, "diff", lab, aws_session), reference)
    compare(sim, real)


def test_az_loss_2_2_1_and_3_2_agree(lab_nodes: Nodes, aws_session: boto3.Session) -> None:
    lab, nodes = lab_nodes
    sim = az_scenario(SimBackend(nodes, AZ_NAMES, "diff-az"))
    reference = sim.as_dict()
    for az in ("a", "b", "c"):  # the seed's facts, on the simulation first
        view = reference[f"AZ {az} cut off"]
        assert isinstance(view, dict) and view["leaders"] == 1, f"2-2-1 must survive losing AZ {az}: {view}"
        down = {row[0] for row in view["members"] if not row[2]}
        assert down == {n for n in AZ_NAMES if n[0] == az}
    assert reference["the bigger AZ of a 3-2 layout cut off"] == "NoLeader"

    real = az_scenario(LabBackend(nodes, AZ_NAMES, "diff-az", lab, aws_session), reference)
    compare(sim, real)
