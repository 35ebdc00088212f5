"""SwarmOrchestrator: the Orchestrator port over a real Docker Swarm, through any CommandRunner.

Cluster reads and changes run the docker CLI on a manager instance; init, join, token rotation and the
token check run the node agent (``autojoin-node``, see autojoin/node/agent.py) on the instance
itself, so no token ever crosses the runner: neither in an argv nor in an output.

Every docker/agent error text this adapter understands is in ERROR_TABLE / AGENT_ERRORS below, and
nowhere else. The texts were captured from docker 20.10 (tests/swarm/captured/docker-20.10.json).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import SecretStr

from autojoin.domain.model import Role
from autojoin.errors import (
    AlreadyInSwarm,
    CommandFailed,
    DemotionWouldLoseQuorum,
    InvalidJoinToken,
    LastManager,
    MustDemoteFirst,
    NodeNotDown,
    NodeNotFound,
    NodeNotReady,
    NoLeader,
    NotAManager,
    NoTicket,
    OrchestratorError,
    TransientAwsError,
    Unreachable,
)
from autojoin.ports import CommandResult, CommandRunner, Member, Orchestrator

# --- the one message -> error table ---------------------------------------------------------------

# (lower-case fragment of docker's stderr, error class); first match wins.
ERROR_TABLE: tuple[tuple[str, type[OrchestratorError]], ...] = (
    ("does not have a leader", NoLeader),
    ("is not a swarm manager", NotAManager),
    ("must be demoted to worker before removal", MustDemoteFirst),
    ("demote the last manager", LastManager),
    ("loss of quorum", DemotionWouldLoseQuorum),  # demote: "…this would result in a loss of quorum"
    ("erases all current state of the swarm", LastManager),  # `swarm leave` on the last manager
    ("participating as a manager", MustDemoteFirst),  # `swarm leave` on a manager, no --force
    ("is not down and can't be removed", NodeNotDown),
    ("already part of a swarm", AlreadyInSwarm),
    ("valid join token is necessary", InvalidJoinToken),
    ("invalid join token", InvalidJoinToken),
    ("no such node", NodeNotFound),
    ("cannot connect to the docker daemon", Unreachable),
    ("timeout was reached before node joined", Unreachable),
    ("context deadline exceeded", Unreachable),
    ("connection refused", Unreachable),
)

# error codes printed by the node agent -> error class (anything else: ERROR_TABLE on its detail)
AGENT_ERRORS: Mapping[str, type[Exception]] = {
    "no_ticket": NoTicket,
    "node_not_ready": NodeNotReady,  # the boot script has not finished (docs/node-agent.md)
    "invalid_join_token": InvalidJoinToken,
    "already_in_swarm": AlreadyInSwarm,
    "unreachable": Unreachable,
    "daemon_unreachable": Unreachable,
    "no_leader": NoLeader,
    "not_a_manager": NotAManager,
    "not_in_swarm": NotAManager,
    "is_manager": MustDemoteFirst,
}

# errors after which the next candidate manager may do better
_TRY_NEXT: tuple[type[OrchestratorError], ...] = (Unreachable, NotAManager, NoLeader)

INSPECT_FORMAT = (
    '{"ID":{{json .ID}},"Hostname":{{json .Description.Hostname}},"Spec":{{json .Spec}},'
    '"Status":{{json .Status}},"ManagerStatus":{{json .ManagerStatus}}}'
)
INSPECT_CHUNK = 40  # node ids per `node inspect` (keeps each output far below SSM's 24,000 characters)


def error_for(text: str, what: str, exit_code: int | None = None) -> OrchestratorError:
    """The project's error for a docker error text (CommandFailed when no entry matches)."""
    low = text.lower()
    for fragment, cls in ERROR_TABLE:
        if fragment in low:
            return cls(f"{what}: {fragment}")
    return CommandFailed(what, exit_code)


def agent_error(result: Mapping[str, Any], what: str, exit_code: int | None) -> Exception:
    code = str(result.get("error", ""))
    cls = AGENT_ERRORS.get(code)
    if cls is not None:
        return cls(f"{what}: {code}")
    if code == "aws":
        return TransientAwsError(f"{what}: the node's AWS call failed")
    return error_for(str(result.get("detail", "")), f"{what} ({code or 'no code'})", exit_code)


# --- parsing --------------------------------------------------------------------------------------


def parse_json_lines(text: str) -> list[dict[str, Any]]:
    """One JSON object per non-empty line (``--format '{{json .}}'`` output)."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        value = json.loads(line)
        if not isinstance(value, dict):
            raise ValueError("expected one JSON object per line")
        out.append(value)
    return out


def parse_agent_output(stdout: str) -> dict[str, Any] | None:
    """The agent's result: its last non-empty stdout line, when that is a JSON object."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def member_from_inspect(node: Mapping[str, Any]) -> Member:
    """A Member from one node's ``docker node inspect`` object (full or INSPECT_FORMAT)."""
    spec = node.get("Spec") or {}
    status = node.get("Status") or {}
    manager = node.get("ManagerStatus") or {}
    hostname = node.get("Hostname") or (node.get("Description") or {}).get("Hostname", "")
    role = Role(spec.get("Role", "worker"))
    labels = {str(k): str(v) for k, v in (spec.get("Labels") or {}).items()}
    address = status.get("Addr") or None
    if (address is None or address == "0.0.0.0") and manager.get("Addr"):  # noqa: S104 - not a bind
        address = str(manager["Addr"]).rsplit(":", 1)[0]
    return Member(
        node_id=str(node["ID"]),
        hostname=str(hostname),
        role=role,
        ready=status.get("State") == "ready",
        available=spec.get("Availability") == "active",
        reachable=manager.get("Reachability") == "reachable" if role is Role.MANAGER else True,
        leader=bool(manager.get("Leader", False)),
        in_raft=bool(manager),
        address=address,
        labels=labels,
        instance_id=labels.get("instance-id"),
    )


def parse_members(inspect_stdout: str) -> list[Member]:
    return [member_from_inspect(node) for node in parse_json_lines(inspect_stdout)]


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- the adapter ----------------------------------------------------------------------------------


class SwarmOrchestrator(Orchestrator):
    """Orchestrator over docker CLI / node-agent argv sent through ``runner``.

    ``managers`` returns candidate manager instance ids, tried in order until one answers (the last
    one that answered is tried first next time).
    """

    def __init__(
        self,
        runner: CommandRunner,
        managers: Callable[[], Sequence[str]],
        *,
        docker: Sequence[str] = ("docker",),
        agent: Sequence[str] = ("autojoin-node",),
        timeout: float = 60.0,
        join_timeout: float = 120.0,
    ) -> None:
        self._runner = runner
        self._managers = managers
        self._docker = tuple(docker)
        self._agent = tuple(agent)
        self._timeout = timeout
        self._join_timeout = join_timeout
        self._preferred: str | None = None

    # -- plumbing --

    def _candidates(self) -> Iterator[str]:
        """The manager that answered last first; the candidate list (AWS reads, in production) is asked
        for only when that one cannot serve — so a warm function makes no lookups on the happy path."""
        if self._preferred is not None:
            yield self._preferred
        for instance_id in dict.fromkeys(self._managers()):
            if instance_id != self._preferred:
                yield instance_id

    def _on_manager(self, argv: Sequence[str], what: str) -> CommandResult:
        """Run ``argv`` on the first candidate manager that can answer; raise the mapped error."""
        errors: list[OrchestratorError] = []
        for instance_id in self._candidates():
            try:
                result = self._runner.run(instance_id, argv, timeout=self._timeout)
            except Unreachable as exc:
                errors.append(exc)
                continue
            if result.exit_code == 0:
                self._preferred = instance_id
                return result
            error = error_for(result.stderr, what, result.exit_code)
            if not isinstance(error, _TRY_NEXT):
                self._preferred = instance_id
                raise error
            errors.append(error)
        raise self._best(errors, what)

    @staticmethod
    def _best(errors: Sequence[OrchestratorError], what: str) -> OrchestratorError:
        """No manager answered: NoLeader beats NotAManager beats Unreachable."""
        for cls in (NoLeader, NotAManager):
            found = next((e for e in errors if isinstance(e, cls)), None)
            if found is not None:
                return found
        return errors[-1] if errors else Unreachable(f"{what}: no candidate manager")

    def _docker_on_manager(self, *args: str) -> CommandResult:
        return self._on_manager([*self._docker, *args], f"docker {args[0]} {args[1]}")

    def _agent_on(
        self, instance_id: str, args: Sequence[str], *, timeout: float | None = None
    ) -> dict[str, Any]:
        what = f"autojoin-node {args[0]}"
        result = self._runner.run(instance_id, [*self._agent, *args], timeout=timeout or self._timeout)
        return self._agent_result(result, what)

    @staticmethod
    def _agent_result(result: CommandResult, what: str) -> dict[str, Any]:
        parsed = parse_agent_output(result.stdout)
        if parsed is None:
            raise error_for(result.stderr, f"{what} (no result)", result.exit_code)
        if "error" in parsed or result.exit_code != 0:
            raise agent_error(parsed, what, result.exit_code)
        return parsed

    def _agent_on_manager(self, args: Sequence[str]) -> dict[str, Any]:
        what = f"autojoin-node {args[0]}"
        errors: list[OrchestratorError] = []
        for instance_id in self._candidates():
            try:
                result = self._runner.run(instance_id, [*self._agent, *args], timeout=self._timeout)
                parsed = self._agent_result(result, what)
            except _TRY_NEXT as exc:
                errors.append(exc)
                continue
            self._preferred = instance_id
            return parsed
        raise self._best(errors, what)

    # -- reads --

    def members(self) -> Sequence[Member]:
        for attempt in range(3):  # a node removed between `ls` and `inspect`: read again
            ids = self._docker_on_manager("node", "ls", "-q").stdout.split()
            try:
                return [member for chunk in _chunks(ids, INSPECT_CHUNK) for member in self._inspect(chunk)]
            except NodeNotFound:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def member(self, node_id: str) -> Member:
        """One member by node id (or hostname); NodeNotFound when the swarm has no such node."""
        found = self._inspect([node_id])
        if not found:
            raise CommandFailed("docker node inspect (no output)")
        return found[0]

    def _inspect(self, node_ids: Sequence[str]) -> list[Member]:
        out = self._docker_on_manager("node", "inspect", "--format", INSPECT_FORMAT, *node_ids).stdout
        try:
            return parse_members(out)
        except (ValueError, KeyError, TypeError) as exc:  # cut-off or unexpected output
            raise CommandFailed("docker node inspect (unparsable output)") from exc

    def node_info(self, instance_id: str) -> dict[str, Any]:
        """The agent's view of one node: {"node_id", "state", "is_manager"}."""
        return self._agent_on(instance_id, ["info"])

    # -- membership changes on the node itself --

    def init(self, instance_id: str, advertise_address: str) -> str:
        return str(
            self._agent_on(
                instance_id, ["init", "--advertise-addr", advertise_address], timeout=self._join_timeout
            )["node_id"]
        )

    def join(self, instance_id: str, role: Role) -> str:
        """The agent's join. When the agent gives no answer (its process died half way, or the runner timed
        out after delivering the command) the join may still have happened: the node's own daemon is asked,
        and a node that is in a swarm now gives its node id (the caller verifies it as it would the agent's
        report: new to the swarm, the right role). Otherwise the original error is raised."""
        argv = [*self._agent, "join", "--role", role.value]
        try:
            result = self._runner.run(instance_id, argv, timeout=self._join_timeout)
        except Unreachable:
            found = self.joined_node(instance_id)
            if found is None:
                raise
            return found
        if parse_agent_output(result.stdout) is None:
            found = self.joined_node(instance_id)
            if found is not None:
                return found
        return str(self._agent_result(result, "autojoin-node join")["node_id"])

    def joined_node(self, instance_id: str) -> str | None:
        """The node id of the instance's daemon when it is an active swarm node (``autojoin-node info``);
        None when it is not, or cannot say."""
        try:
            info = self.node_info(instance_id)
        except (OrchestratorError, TransientAwsError):
            return None
        node_id = info.get("node_id")
        return str(node_id) if info.get("state") == "active" and node_id else None

    def leave(self, instance_id: str, *, force: bool = False) -> None:
        """``docker swarm leave`` on the node; a node that is in no swarm has nothing to do."""
        argv = [*self._docker, "swarm", "leave", *(["--force"] if force else [])]
        result = self._runner.run(instance_id, argv, timeout=self._timeout)
        if result.exit_code == 0 or "not part of a swarm" in result.stderr.lower():
            return
        raise error_for(result.stderr, "docker swarm leave", result.exit_code)

    # -- cluster changes through a manager --

    def label(self, node_id: str, labels: dict[str, str]) -> None:
        if not labels:
            return
        adds = [arg for key, value in sorted(labels.items()) for arg in ("--label-add", f"{key}={value}")]
        self._docker_on_manager("node", "update", *adds, node_id)

    def promote(self, node_id: str) -> None:
        self._docker_on_manager("node", "promote", node_id)

    def demote(self, node_id: str) -> None:
        self._docker_on_manager("node", "demote", node_id)

    def drain(self, node_id: str) -> None:
        self._docker_on_manager("node", "update", "--availability", "drain", node_id)

    def remove(self, node_id: str) -> None:
        """``docker node rm``: NodeNotDown until the node shows Down; a node already gone is done."""
        try:
            self._docker_on_manager("node", "rm", node_id)
        except NodeNotFound:
            return

    def running_tasks(self, node_id: str) -> int:
        """Tasks the swarm still wants running on the node (``docker node ps``, desired state running)."""
        out = self._docker_on_manager("node", "ps", "--filter", "desired-state=running", "-q", node_id).stdout
        return len(out.split())

    def rotate_token(self, role: Role, version_id: str, current: SecretStr | None = None) -> None:
        args = ["rotate", "--role", role.value, "--version-id", version_id]
        if current is not None:
            # The node compares the swarm's token with AWSCURRENT without either crossing SSM: a fresh
            # random nonce and HMAC-SHA256(nonce, AWSCURRENT) travel instead (node/agent.py token_mac).
            nonce = secrets.token_hex(16)
            mac = hmac.new(
                bytes.fromhex(nonce), current.get_secret_value().encode(), hashlib.sha256
            ).hexdigest()
            args += ["--nonce", nonce, "--current-mac", mac]
        self._agent_on_manager(args)

    def sync_token(self, role: Role, version_id: str) -> None:
        self._agent_on_manager(["sync-token", "--role", role.value, "--version-id", version_id])

    def token_works(self, role: Role, version_id: str) -> bool:
        return bool(
            self._agent_on_manager(["check-token", "--role", role.value, "--version-id", version_id])[
                "matches"
            ]
        )
