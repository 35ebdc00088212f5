"""The end-to-end kit: the local cloud (AWS side: the real template, handlers and boto3 adapters) wired to
the real-swarm lab (cluster side). Each instance the local cloud launches gets its own bare lab daemon in
the same AZ; the production SwarmOrchestrator reaches it through the LocalSocketRunner (SSM's stand-in).
Used by the end-to-end tests and by ``autojoin lab bench`` (join latency through the handler path)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autojoin.adapters.local.runner import LocalNode, LocalSocketRunner
from autojoin.domain.model import Role
from autojoin.lab import Lab, LabNode
from autojoin.localcloud import LocalCloud
from autojoin.ports import CommandResult, CommandRunner

MAX_NODES = 24
TEMPLATE = Path("template.yaml")


@dataclass
class LabRunner(CommandRunner):
    """Maps local-cloud instance ids to lab nodes; built before the stack exists, wired after."""

    lab: Lab
    nodes: dict[str, LabNode] = field(default_factory=dict)
    principals: dict[str, str] = field(default_factory=dict)
    inner: CommandRunner | None = None  # the lab's LocalSocketRunner (tests may wrap it)

    def local_node(self, instance_id: str) -> LocalNode | None:
        node = self.nodes.get(instance_id)
        if node is None:
            return None
        cut = self.lab.is_cut(node)
        return LocalNode(instance_id, node.socket, node.address, self.principals[instance_id], cut=cut)

    def run(self, instance_id: str, argv: Sequence[str], *, timeout: float = 60.0) -> CommandResult:
        if self.inner is None:
            raise RuntimeError("the stack is not provisioned yet")
        return self.inner.run(instance_id, argv, timeout=timeout)


@dataclass
class E2E:
    cloud: LocalCloud
    runner: LabRunner
    lab: Lab

    def node(self, instance_id: str) -> LabNode:
        return self.runner.nodes[instance_id]

    @property
    def orchestrator(self) -> Any:
        return self.cloud.deps_for("OnLaunchFunction").orchestrator

    def token(self, role: Role) -> str:
        lid = "ManagerTokenSecret" if role is Role.MANAGER else "WorkerTokenSecret"
        sm = self.cloud.session.client("secretsmanager")
        arn = self.cloud.stack.physical[lid]["Ref"]
        return str(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])


@contextmanager
def e2e_cloud(
    lab: Lab, zones: tuple[str, ...], cluster: str, seed: int = 11, template: Path = TEMPLATE
) -> Iterator[E2E]:
    runner = LabRunner(lab)
    # the lab's nodes live in real time (the agent checks a ticket's expiry against its own clock), so the
    # simulated clock starts now; a handler's real wall time counts (the real swarm works in real time)
    start = datetime.now(UTC).replace(microsecond=0)
    with LocalCloud(
        template=template, seed=seed, zones=zones, orchestrator=runner, start=start, count_wall_time=True
    ) as cloud:
        stack = cloud.provision(cluster=cluster)
        role_ids = {
            stack.manager_group: stack.physical["ManagerInstanceRole"]["RoleId"],
            stack.worker_group: stack.physical["WorkerInstanceRole"]["RoleId"],
        }
        runner.inner = LocalSocketRunner(
            runner.local_node,
            env={
                "AUTOJOIN_HANDOFF_TABLE": stack.physical["HandoffTable"]["Ref"],
                "AUTOJOIN_MANAGER_SECRET_ID": stack.physical["ManagerTokenSecret"]["Ref"],
                "AUTOJOIN_WORKER_SECRET_ID": stack.physical["WorkerTokenSecret"]["Ref"],
                "AWS_DEFAULT_REGION": cloud.region,
            },
        )

        def on_instance(what: str, instance_id: str) -> None:
            node = runner.nodes.get(instance_id)
            if what in {"terminated", "crashed"} and node is not None:
                # the machine is gone (or dead): its daemon stops, as the instance would
                (lab.stop if what == "terminated" else lab.kill)(node)
                return
            if what != "launched":
                return
            if len(runner.nodes) >= MAX_NODES:  # a launch loop would otherwise fill the machine with daemons
                raise RuntimeError(
                    f"more than {MAX_NODES} launches in one end-to-end cluster: a launch loop?"
                )
            tracked = cloud.engine.tracked[instance_id]
            runner.nodes[instance_id] = lab.add_node(tracked.az)
            runner.principals[instance_id] = f"{role_ids[tracked.group]}:{instance_id}"

        cloud.subscribe(on_instance)
        yield E2E(cloud, runner, lab)
