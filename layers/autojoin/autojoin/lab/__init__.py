"""The real-swarm lab: one dockerd per node, each in its own network namespace, on this machine.

``Lab`` drives ``swarm-lab.sh`` (next to this file). Nodes get fake EC2 identities (instance id
``i-lab000000000001``, principal ``AROALAB...:i-lab...``) and an AZ, so the control plane can treat them
as instances. ``up()`` starts bare daemons with no swarm (autojoin must bootstrap it); ``up(form=True)``
also forms a swarm with plain docker commands (for ``autojoin lab up``). Containers do not run (no
images, vfs, no bridge); swarm membership, tokens, promote/demote, node rm, labels and quorum are real.

Needs root, iproute2, util-linux and Debian's docker.io (``Lab.install()`` / ``swarm-lab.sh install``).
Use a distinct ``root``/``prefix`` per user of the lab: tests use their own, so a user's lab is untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autojoin.adapters.local.runner import LocalNode, default_docker_cli

SCRIPT = Path(__file__).with_name("swarm-lab.sh")
PRINCIPAL_ROLE_ID = "AROALAB0000000000000"
DEFAULT_ROOT = "/tmp/autojoin-lab"  # noqa: S108 - root-only lab state, like the recipe
DEFAULT_PREFIX = "ajl"
DEFAULT_NET = "10.200.0"


class LabError(RuntimeError):
    """The lab cannot do what was asked (not root, docker.io missing, a daemon did not start...)."""


@dataclass(frozen=True)
class LabNode:
    number: int
    instance_id: str
    socket: str  # unix:///<root>/nN/docker.sock
    address: str  # 10.200.0.(10+N), inside the node's own namespace
    az: str
    role: str | None = None  # the role a formed lab gave it (None: a bare node)

    @property
    def principal(self) -> str:
        return f"{PRINCIPAL_ROLE_ID}:{self.instance_id}"

    @property
    def manager_address(self) -> str:
        return f"{self.address}:2377"


def instance_id_of(number: int) -> str:
    return f"i-lab{number:012d}"


class Lab:
    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        prefix: str = DEFAULT_PREFIX,
        net: str = DEFAULT_NET,
        *,
        docker_cli: str | None = None,
        stop_wait: int = 15,
        log_level: str = "warn",
    ) -> None:
        self.root = Path(root)
        self.prefix = prefix
        self.net = net
        self.docker_cli = docker_cli or default_docker_cli()
        self.stop_wait = stop_wait
        self.log_level = log_level

    # -- the shell recipe --

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SWL_ROOT": str(self.root),
            "SWL_PREFIX": self.prefix,
            "SWL_NET": self.net,
            "SWL_MODE": "netns",
            "SWL_STOP_WAIT": str(self.stop_wait),
            "SWL_LOG_LEVEL": self.log_level,
            "DOCKER_CLI": self.docker_cli,
        }

    def script(
        self, *args: str, check: bool = True, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise LabError(f"swarm-lab.sh {' '.join(args)} failed: {proc.stderr.strip()[-600:]}")
        return proc

    @staticmethod
    def preflight() -> None:
        """Raise LabError with a clear message when this machine cannot run a lab."""
        if os.geteuid() != 0:
            raise LabError("the swarm lab needs root (it creates network namespaces and runs dockerd)")
        missing = [tool for tool in ("dockerd", "ip", "nsenter", "unshare") if shutil.which(tool) is None]
        if missing:
            raise LabError(
                f"missing {', '.join(missing)}: run `bash {SCRIPT} install` (apt-get install docker.io "
                "iproute2 util-linux)"
            )

    def install(self) -> None:
        """Install Debian's docker.io (and iproute2, util-linux) when missing."""
        if os.geteuid() != 0:
            raise LabError("installing docker.io needs root")
        self.script("install", timeout=900.0)

    # -- node metadata --

    @property
    def _meta_path(self) -> Path:
        return self.root / "autojoin-lab.json"

    def _meta(self) -> dict[str, Any]:
        try:
            data = json.loads(self._meta_path.read_text())
        except FileNotFoundError:
            return {"nodes": [], "cut": []}
        return data if isinstance(data, dict) else {"nodes": [], "cut": []}

    def _save(self, meta: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        tmp.replace(self._meta_path)

    def nodes(self) -> list[LabNode]:
        return [LabNode(**n) for n in self._meta()["nodes"]]

    def node(self, which: int | str | LabNode) -> LabNode:
        if isinstance(which, LabNode):
            return which
        for n in self.nodes():
            if which in (n.number, n.instance_id):
                return n
        raise LabError(f"no lab node {which}")

    def is_cut(self, node: int | str | LabNode) -> bool:
        return self.node(node).number in self._meta()["cut"]

    def local_node(self, instance_id: str) -> LocalNode | None:
        """What the LocalSocketRunner needs (its ``nodes`` callable): None for an unknown instance."""
        meta = self._meta()
        for raw in meta["nodes"]:
            n = LabNode(**raw)
            if n.instance_id == instance_id:
                return LocalNode(n.instance_id, n.socket, n.address, n.principal, cut=n.number in meta["cut"])
        return None

    def _set_cut(self, numbers: Iterable[int], cut: bool) -> None:
        meta = self._meta()
        current = set(meta["cut"])
        meta["cut"] = sorted(current | set(numbers)) if cut else sorted(current - set(numbers))
        self._save(meta)

    # -- lifecycle --

    def up(
        self,
        managers: int = 0,
        workers: int = 0,
        zones: Sequence[str] = ("a", "b", "c"),
        *,
        form: bool = False,
    ) -> list[LabNode]:
        """A fresh lab: ``managers + workers`` daemons (managers first, each group round-robin over
        ``zones``). Bare unless ``form``: then a swarm of those managers and workers, labelled."""
        self.preflight()
        self.down()
        made: list[LabNode] = []
        for i in range(managers):
            made.append(self.add_node(zones[i % len(zones)], role="manager" if form else None))
        for i in range(workers):
            made.append(self.add_node(zones[i % len(zones)], role="worker" if form else None))
        if form and made:
            self.form([n for n in made if n.role == "manager"], [n for n in made if n.role == "worker"])
        return made

    def add_node(self, az: str, *, role: str | None = None) -> LabNode:
        """Start one more bare daemon (not in any swarm) in ``az``."""
        numbers = [n.number for n in self.nodes()]
        number = max(numbers, default=0) + 1
        self.script("add", str(number), az)
        node = LabNode(
            number=number,
            instance_id=instance_id_of(number),
            socket=f"unix://{self.root}/n{number}/docker.sock",
            address=f"{self.net}.{10 + number}",
            az=az,
            role=role,
        )
        meta = self._meta()
        meta["nodes"].append(asdict(node))
        self._save(meta)
        return node

    def form(self, managers: Sequence[LabNode], workers: Sequence[LabNode]) -> None:
        """A swarm with plain docker commands (tokens stay in this process), nodes labelled."""
        first, *rest = managers
        self._ok(first, "swarm", "init", "--advertise-addr", first.address)
        tokens = {
            role: self._ok(first, "swarm", "join-token", "-q", role).stdout.strip()
            for role in ("manager", "worker")
        }
        for node, role in [*((m, "manager") for m in rest), *((w, "worker") for w in workers)]:
            self._ok(
                node,
                "swarm",
                "join",
                "--token",
                tokens[role],
                "--advertise-addr",
                node.address,
                first.manager_address,
            )
        for node in [*managers, *workers]:
            node_id = self._ok(node, "info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
            self._ok(
                first, "node", "update", "--label-add", f"instance-id={node.instance_id}",
                "--label-add", f"az={node.az}", node_id,
            )  # fmt: skip

    def _ok(self, node: LabNode, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.docker(node, *args)
        if proc.returncode != 0:
            what = " ".join(args[:2])
            raise LabError(f"docker {what} on n{node.number}: {proc.stderr.strip()}")
        return proc

    def docker(
        self, node: int | str | LabNode, *args: str, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        n = self.node(node)
        return subprocess.run(
            [self.docker_cli, "-H", n.socket, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def stop(self, node: int | str | LabNode) -> None:
        self.script("stop", str(self.node(node).number))

    def kill(self, node: int | str | LabNode) -> None:
        self.script("kill", str(self.node(node).number))

    def start(self, node: int | str | LabNode) -> None:
        self.script("start", str(self.node(node).number))

    def cut(self, node: int | str | LabNode) -> None:
        n = self.node(node)
        self.script("cut", str(n.number))
        self._set_cut([n.number], True)

    def heal(self, node: int | str | LabNode) -> None:
        n = self.node(node)
        self.script("heal", str(n.number))
        self._set_cut([n.number], False)

    def zone(self, az: str) -> list[LabNode]:
        return [n for n in self.nodes() if n.az == az]

    def cut_zone(self, az: str) -> list[LabNode]:
        """Cut every node of ``az`` off the network (an AZ outage); returns them."""
        cut = self.zone(az)
        for n in cut:
            self.cut(n)
        return cut

    def heal_zone(self, az: str) -> list[LabNode]:
        healed = self.zone(az)
        for n in healed:
            self.heal(n)
        return healed

    def down(self) -> None:
        """Stop every daemon of this lab (by PID), delete its namespaces and state. Safe to repeat."""
        self.script("down", timeout=180.0)

    def status(self) -> list[dict[str, Any]]:
        """Per node: identity, AZ, whether its daemon answers, its swarm state and manager flag."""
        rows: list[dict[str, Any]] = []
        for n in self.nodes():
            proc = self.docker(n, "info", "--format", "{{json .Swarm}}", timeout=15.0)
            info: dict[str, Any] = {}
            if proc.returncode == 0:
                try:
                    info = json.loads(proc.stdout)
                except ValueError:
                    info = {}
            rows.append(
                {
                    "node": f"n{n.number}",
                    "instance_id": n.instance_id,
                    "az": n.az,
                    "address": n.address,
                    "daemon": "up" if proc.returncode == 0 else "down",
                    "cut": self.is_cut(n),
                    "swarm": info.get("LocalNodeState", "-"),
                    "manager": bool(info.get("ControlAvailable", False)),
                    "node_id": info.get("NodeID") or "",
                    "error": info.get("Error") or "",
                }
            )
        return rows

    def wait_for(self, predicate: Any, *, budget: float = 120.0, interval: float = 1.0) -> Any:
        """Poll ``predicate()`` until it returns something truthy (returned) or ``budget`` s pass (None)."""
        deadline = time.monotonic() + budget
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                return None
            time.sleep(interval)
