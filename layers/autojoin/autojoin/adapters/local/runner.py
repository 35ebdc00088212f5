"""LocalSocketRunner: the CommandRunner of the real-swarm lab.

An instance id names a lab node: its own dockerd socket, advertise address and AWS principal.
``docker ...`` argv runs as ``docker -H unix://<socket> ...`` in a subprocess; ``autojoin-node ...``
argv runs the node agent IN-PROCESS (``autojoin.node.agent.main``), so that its boto3 calls reach
whatever AWS the caller set up (moto's ``mock_aws`` in tests), with DOCKER_HOST, AUTOJOIN_PRINCIPAL
and AUTOJOIN_ADVERTISE_ADDR set for that node.

A node marked ``cut`` (network partition) is unreachable to the runner too, as an instance cut off
from the network is to SSM.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autojoin.errors import Unreachable
from autojoin.node import agent
from autojoin.ports import CommandResult, CommandRunner


@dataclass(frozen=True)
class LocalNode:
    instance_id: str
    socket: str  # "unix:///.../docker.sock"
    address: str  # the address the node advertises (10.200.0.x inside its namespace)
    principal: str  # what sts would return as UserId on EC2: "ROLEID:i-..."
    cut: bool = False


def default_docker_cli() -> str:
    """Debian's docker.io CLI when present (it matches the lab's daemons), else ``docker`` on PATH."""
    return "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"


class LocalSocketRunner(CommandRunner):
    def __init__(
        self,
        nodes: Mapping[str, LocalNode] | Callable[[str], LocalNode | None],
        *,
        env: Mapping[str, str] | None = None,
        session_factory: Callable[[], Any] | None = None,
        docker_cli: str | None = None,
        agent_name: str = "autojoin-node",
    ) -> None:
        self._nodes = nodes
        self._env = dict(env or {})
        self._session_factory = session_factory
        self._docker_cli = docker_cli or default_docker_cli()
        self._agent_name = agent_name

    def _node(self, instance_id: str) -> LocalNode:
        node = self._nodes(instance_id) if callable(self._nodes) else self._nodes.get(instance_id)
        if node is None:
            raise Unreachable(f"no lab node for instance {instance_id}")
        if node.cut:
            raise Unreachable(f"lab node {instance_id} is cut off")
        return node

    def run(self, instance_id: str, argv: Sequence[str], *, timeout: float = 60.0) -> CommandResult:
        node = self._node(instance_id)
        if not argv:
            raise ValueError("empty argv")
        if argv[0] == "docker":
            return self._docker(node, argv[1:], timeout)
        if argv[0] == self._agent_name:
            return self._agent(node, argv[1:])
        raise ValueError(f"the lab runs only docker and {self._agent_name}, not {argv[0]}")

    def _docker(self, node: LocalNode, args: Sequence[str], timeout: float) -> CommandResult:
        try:
            proc = subprocess.run(
                [self._docker_cli, "-H", node.socket, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise Unreachable(f"docker on {node.instance_id} timed out after {timeout:.0f} s") from exc
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

    def agent_env(self, node: LocalNode) -> dict[str, str]:
        return {
            **self._env,
            "DOCKER_HOST": node.socket,
            "AUTOJOIN_PRINCIPAL": node.principal,
            "AUTOJOIN_ADVERTISE_ADDR": node.address,
            "AUTOJOIN_DOCKER_CLI": self._docker_cli,
        }

    def _agent(self, node: LocalNode, args: Sequence[str]) -> CommandResult:
        # The lab's network stands in for the VPC: whatever address the control plane knows the instance by
        # (its private IP in the local cloud), the lab node can only advertise its own lab address.
        args = [node.address if i and args[i - 1] == "--advertise-addr" else a for i, a in enumerate(args)]
        out = io.StringIO()
        session = self._session_factory() if self._session_factory else None
        code = agent.main(list(args), self.agent_env(node), session, out=out)
        return CommandResult(code, out.getvalue(), "")
