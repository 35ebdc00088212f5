"""Helpers for the real-swarm tests: a cluster under test, and polling that never asserts time."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import boto3

from autojoin.adapters.local.runner import LocalSocketRunner
from autojoin.adapters.swarm.orchestrator import SwarmOrchestrator
from autojoin.domain.model import Role
from autojoin.lab import Lab, LabNode

TABLE = "autojoin-handoff"
BUDGET = 150.0  # seconds: swarm state changes are polled, never timed

T = TypeVar("T")


@dataclass
class Cluster:
    """One swarm under test: its lab nodes, its secrets, an orchestrator over the local runner."""

    name: str
    lab: Lab
    aws: boto3.Session
    nodes: list[LabNode] = field(default_factory=list)
    managers: list[LabNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        sm = self.aws.client("secretsmanager")
        for role in Role:
            sm.create_secret(Name=self.secret_id(role))
        env = {
            "AUTOJOIN_HANDOFF_TABLE": TABLE,
            "AUTOJOIN_MANAGER_SECRET_ID": self.secret_id(Role.MANAGER),
            "AUTOJOIN_WORKER_SECRET_ID": self.secret_id(Role.WORKER),
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.runner = LocalSocketRunner(self.lab.local_node, env=env)
        self.orch = SwarmOrchestrator(self.runner, lambda: [m.instance_id for m in self.managers])

    def secret_id(self, role: Role) -> str:
        return f"{self.name}/{role.value}-token"

    def token(self, role: Role, stage: str = "AWSCURRENT") -> str:
        sm = self.aws.client("secretsmanager")
        return str(sm.get_secret_value(SecretId=self.secret_id(role), VersionStage=stage)["SecretString"])

    def offer(self, node: LabNode, role: Role, token: str | None = None, ttl: int = 600) -> None:
        """Write the node's hand-off ticket (what on_launch does through the HandOff port)."""
        self.aws.client("dynamodb").put_item(
            TableName=TABLE,
            Item={
                "principal": {"S": node.principal},
                "cluster": {"S": self.name},
                "role": {"S": role.value},
                "token": {"S": token if token is not None else self.token(role)},
                "managers": {"L": [{"S": m.manager_address} for m in self.managers]},
                "expires_at": {"N": str(int(time.time()) + ttl)},
            },
        )

    def add(self, az: str) -> LabNode:
        node = self.lab.add_node(az)
        self.nodes.append(node)
        return node

    def bootstrap(self, first: LabNode) -> str:
        node_id = self.orch.init(first.instance_id, first.address)
        self.managers.append(first)
        self.orch.label(node_id, {"instance-id": first.instance_id, "az": first.az})
        return node_id

    def join(self, node: LabNode, role: Role) -> str:
        self.offer(node, role)
        node_id = self.orch.join(node.instance_id, role)
        self.orch.label(node_id, {"instance-id": node.instance_id, "az": node.az})
        if role is Role.MANAGER:
            self.managers.append(node)
        return node_id

    def grow(self, manager_zones: Sequence[str], worker_zones: Sequence[str] = ()) -> None:
        first = self.add(manager_zones[0])
        self.bootstrap(first)
        for az in manager_zones[1:]:
            self.join(self.add(az), Role.MANAGER)
        for az in worker_zones:
            self.join(self.add(az), Role.WORKER)


def eventually(
    probe: Callable[[], T | None], *, budget: float = BUDGET, interval: float = 1.0, what: str = ""
) -> T:
    """Poll ``probe`` until it returns a truthy value; exceptions count as 'not yet'. Never asserts time."""
    deadline = time.monotonic() + budget
    last: Any = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not reached within {budget:.0f} s (last: {last!r})")
        time.sleep(interval)


def raises_eventually(
    call: Callable[[], object], error: type[BaseException], *, budget: float = BUDGET, what: str = ""
) -> BaseException:
    """Poll ``call`` until it raises ``error`` (returned)."""

    def probe() -> BaseException | None:
        try:
            call()
        except error as exc:
            return exc
        return None

    return eventually(probe, budget=budget, what=what or f"{error.__name__}")
