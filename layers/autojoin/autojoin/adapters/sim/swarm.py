"""SimSwarm: an in-memory Docker Swarm that obeys Raft's rules, behind the Orchestrator port.

It stands in for ``SwarmOrchestrator`` (the real adapter) in unit tests, the local cloud and
``autojoin simulate``. It models what autojoin depends on, as the real swarm does it:

Machines and networks
    Every instance id names a machine. A machine is up or crashed (``crash``/``restart``; a restarted
    machine keeps its swarm state, like a dockerd restarted on its data-root) and sits in one network
    segment (``partition`` moves machines into a new segment together, ``heal`` brings them back to the
    main one). The control plane lives in the main segment: its commands reach a machine only when it
    is up and in the main segment (a cut-off instance is cut off from SSM too; the lab's runner treats a
    cut node the same way). Machines of one cut-off segment still reach each other, so a cut-off
    majority keeps (or elects) a leader of its own, out of the control plane's sight: ``members()``
    then says NoLeader, while ``has_leader()`` tells the simulation's truth.

Raft
    The voters are the managers in the member list (N counts all of them, Down ones included). A leader
    exists only in a segment holding a majority (floor(N/2)+1) of voters that are up; at most one
    segment can. When the leader is lost and a majority remains, the reachable voter with the lowest
    node id becomes leader. Every change made through the port needs that leader (``NoLeader``
    otherwise; ``Unreachable`` when no manager answers at all). Changes are instantaneous here;
    the real swarm needs seconds to elect and 10-40 s to report a lost quorum.

Status
    A node cut off from the leader (crashed, partitioned, left) keeps showing Ready for ``down_delay``
    simulated seconds, then Down; a manager's ManagerStatus turns Unreachable at the same moment. A node
    that comes back is Ready (and Reachable) at once.

Rules enforced (with the errors SwarmOrchestrator maps docker's to): the last manager cannot be
demoted (``LastManager``); a demotion must leave a majority of the remaining voters reachable
(``DemotionWouldLoseQuorum``); a manager must be demoted before ``remove`` (``MustDemoteFirst``) and refuses
``leave`` without ``force`` (``MustDemoteFirst``; ``LastManager`` for the last one; with ``force`` it
leaves but stays in the member list as an unreachable voter, as in Swarm); ``remove`` needs the node
Down (``NodeNotDown``) and is done already when the node is not in the list (as SwarmOrchestrator);
``init``/``join`` on a node already in a swarm (``AlreadyInSwarm``); a wrong or rotated join token
(``InvalidJoinToken``, the old one is refused at once after a rotation); no hand-off ticket, a ticket
for another role or without managers (``CommandFailed``).

Tokens
    Swarm's real format ``SWMTKN-1-<50 base36>-<25 base36>``: the first part identifies the cluster CA
    (the same for both roles), the second is the role's secret. They are derived deterministically from
    ``seed``, handed only to ``store_token`` as ``SecretStr``, and never appear in an exception, a repr
    or ``snapshot()``. The token, not the ticket, decides the role a node joins with (as in Swarm).

Concurrency
    One request at a time, as a real manager applies changes through its Raft log: every public method
    holds the swarm's lock. Concurrent callers (scripts/bench_pool.py's handler environments, threads
    sharing one SimSwarm) see each call whole; before the lock, a join iterating the member list while
    another thread added a node raised ``dictionary changed size during iteration``.

Simulation controls (not on the port): ``crash``, ``restart``, ``partition``, ``heal``,
``has_leader``, ``leader``, ``node_id_of``, ``instance_of``, ``snapshot``, ``valid_token``,
``force_new_cluster``.
"""

from __future__ import annotations

import functools
import hmac
import inspect
import itertools
import random
import string
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

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
    NoLeader,
    NotAManager,
    NoTicket,
    Unreachable,
)
from autojoin.ports import Clock, JoinTicket, Member, Orchestrator

TakeTicket = Callable[[str], JoinTicket | None]
StoreToken = Callable[[Role, SecretStr, str | None], None]
ReadPending = Callable[[Role, str], SecretStr | None]
AddressOf = Callable[[str], str]

BASE36 = string.digits + string.ascii_lowercase
NODE_ID_LENGTH = 25
TOKEN_CA_LENGTH = 50
TOKEN_SECRET_LENGTH = 25
MAIN_SEGMENT = 0


@dataclass
class _Machine:
    """An instance as the network sees it, whether or not it is in the swarm."""

    up: bool = True
    segment: int = MAIN_SEGMENT


@dataclass
class _Node:
    """One entry of the swarm's member list."""

    node_id: str
    instance_id: str
    role: Role
    address: str
    voter: bool  # a Raft member: counts toward N (a manager, unless promoted while out of reach)
    active: bool = True  # Availability == Active (False: drained)
    labels: dict[str, str] = field(default_factory=dict)
    lost_since: datetime | None = None  # when the leader lost contact with it

    def __repr__(self) -> str:
        return f"_Node({self.node_id}, {self.instance_id}, {self.role.value})"


_Cls = TypeVar("_Cls", bound=type)


def _one_request_at_a_time(cls: _Cls) -> _Cls:
    """Every public method of ``cls`` holds the instance's ``_lock`` (module docstring: Concurrency)."""

    def locked(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return fn(self, *args, **kwargs)

        return run

    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(value):
            setattr(cls, name, locked(value))
    return cls


@_one_request_at_a_time
class SimSwarm(Orchestrator):
    """An in-memory Docker Swarm (see the module docstring for the rules it keeps)."""

    def __init__(
        self,
        clock: Clock,
        *,
        take_ticket: TakeTicket,
        store_token: StoreToken,
        address_of: AddressOf,
        read_pending: ReadPending | None = None,
        down_delay: float = 10.0,
        seed: int = 0,
    ) -> None:
        if down_delay < 0:
            raise ValueError(f"down_delay must be >= 0, got {down_delay}")
        self._lock = threading.RLock()  # one request at a time (module docstring, Concurrency)
        self._clock = clock
        self._take_ticket = take_ticket
        self._store_token = store_token
        self._address_of = address_of
        self._read_pending = read_pending
        self._down_delay = timedelta(seconds=down_delay)
        self._ids = random.Random(f"{seed}:node-ids")  # noqa: S311 - a deterministic simulation, not crypto
        self._secrets = random.Random(f"{seed}:tokens")  # noqa: S311 - a deterministic simulation, not crypto
        self._machines: dict[str, _Machine] = {}
        self._nodes: dict[str, _Node] = {}  # node id -> member list entry (insertion order kept)
        self._in_swarm: dict[str, str] = {}  # instance id -> node id its daemon holds swarm state for
        self._last_node: dict[str, str] = {}  # instance id -> the last node id it had
        self._leader: str | None = None  # node id
        self._ca = ""
        self._tokens: dict[Role, str] = {}
        self._stored: dict[tuple[Role, str], str] = {}  # (role, version id) -> token handed to store_token
        self._segments = itertools.count(MAIN_SEGMENT + 1)

    def __repr__(self) -> str:
        return f"SimSwarm(nodes={len(self._nodes)}, leader={self.leader()})"

    # === the Orchestrator port ====================================================================

    def init(self, instance_id: str, advertise_address: str) -> str:
        self._reach(instance_id)
        if instance_id in self._in_swarm:
            raise AlreadyInSwarm(f"{instance_id} is already part of a swarm")
        if self._in_swarm:
            raise CommandFailed("init: this simulation holds one swarm and it still has members")
        self._nodes.clear()
        self._stored.clear()
        self._ca = self._base36(self._secrets, TOKEN_CA_LENGTH)
        self._tokens = {role: self._new_token() for role in (Role.MANAGER, Role.WORKER)}
        node = self._add_node(instance_id, Role.MANAGER, advertise_address)
        self._leader = node.node_id
        self._settle()
        for role in (Role.MANAGER, Role.WORKER):
            self._store_token(role, SecretStr(self._tokens[role]), None)
        return node.node_id

    def join(self, instance_id: str, role: Role) -> str:
        joiner = self._reach(instance_id)
        ticket = self._take_ticket(instance_id)  # read-once: gone whatever happens next
        if ticket is None:
            raise NoTicket("join: no ticket")
        if ticket.role is not role:
            raise CommandFailed(f"join: the ticket is for role {ticket.role.value}, not {role.value}")
        if not ticket.manager_addresses:
            raise CommandFailed("join: the ticket lists no manager")
        if instance_id in self._in_swarm:
            raise AlreadyInSwarm(f"{instance_id} is already part of a swarm")
        contact = self._contact(joiner, ticket.manager_addresses)
        if contact is None:
            raise Unreachable(f"join: no manager of the ticket answered {instance_id}")
        if self._quorum_segment() != self._machines[contact.instance_id].segment:
            raise NoLeader("join: the swarm does not have a leader")
        token_role = self.valid_token(ticket.token)
        if token_role is None:
            raise InvalidJoinToken(f"join: {instance_id} presented an invalid or rotated join token")
        node = self._add_node(instance_id, token_role, self._address_of(instance_id))
        self._settle()
        return node.node_id

    def members(self) -> Sequence[Member]:
        self._command_manager()
        return [self._member(n) for n in sorted(self._nodes.values(), key=lambda n: n.node_id)]

    def label(self, node_id: str, labels: dict[str, str]) -> None:
        self._command_manager()
        self._node(node_id).labels.update(labels)

    def promote(self, node_id: str) -> None:
        self._command_manager()
        node = self._node(node_id)
        if node.role is Role.MANAGER:
            return  # "Node ... is already a manager."
        node.role = Role.MANAGER
        node.voter = self._connected(node)  # one out of reach joins Raft when it comes back
        self._settle()

    def demote(self, node_id: str) -> None:
        self._command_manager()
        node = self._node(node_id)
        if node.role is Role.WORKER:
            return  # "Manager ... is already a worker."
        if sum(1 for n in self._nodes.values() if n.role is Role.MANAGER) == 1:
            raise LastManager(f"demote: {node_id} is the last manager of the swarm")
        if node.voter:
            remaining = self._voter_count() - 1
            up = sum(1 for n in self._voters() if n is not node and self._connected(n))
            if up < remaining // 2 + 1:
                raise DemotionWouldLoseQuorum(f"demote {node_id}: the remaining managers would lose quorum")
        node.role = Role.WORKER
        node.voter = False
        self._settle()

    def drain(self, node_id: str) -> None:
        self._command_manager()
        self._node(node_id).active = False

    def leave(self, instance_id: str, *, force: bool = False) -> None:
        """``docker swarm leave`` on the node: local, so it needs no leader; a no-op outside a swarm.

        A manager refuses without ``force``; with it, it leaves and stays in the list as an unreachable voter.
        """
        self._reach(instance_id)
        node_id = self._in_swarm.get(instance_id)
        if node_id is None:
            return
        node = self._nodes[node_id]
        if node.role is Role.MANAGER and not force:
            if sum(1 for n in self._nodes.values() if n.role is Role.MANAGER) == 1:
                raise LastManager(f"leave: {instance_id} is the last manager (leaving erases the swarm)")
            raise MustDemoteFirst(f"leave: {instance_id} participates as a manager (demote it first)")
        del self._in_swarm[instance_id]
        self._settle()

    def remove(self, node_id: str) -> None:
        """``docker node rm``; a node that is not in the list is already removed (as SwarmOrchestrator)."""
        self._command_manager()
        node = self._nodes.get(node_id)
        if node is None:
            return
        if node.role is Role.MANAGER:
            raise MustDemoteFirst(f"remove: {node_id} is a manager (demote it first)")
        if self._ready(node):
            raise NodeNotDown(f"remove: {node_id} is not down yet")
        del self._nodes[node_id]
        if self._in_swarm.get(node.instance_id) == node_id:
            del self._in_swarm[node.instance_id]  # the node finds itself out when it comes back
        self._settle()

    def rotate_token(self, role: Role, version_id: str, current: SecretStr | None = None) -> None:
        self._command_manager()
        if self._read_pending is not None:  # a retried rotation step: the cluster already has it
            pending = self._read_pending(role, version_id)
            if pending is not None and hmac.compare_digest(pending.get_secret_value(), self._tokens[role]):
                return
        if current is not None and not hmac.compare_digest(current.get_secret_value(), self._tokens[role]):
            # an earlier attempt rotated: store what the cluster holds instead of rotating again
            self._stored[(role, version_id)] = self._tokens[role]
            self._store_token(role, SecretStr(self._tokens[role]), version_id)
            return
        self._tokens[role] = self._new_token()
        self._stored[(role, version_id)] = self._tokens[role]
        self._store_token(role, SecretStr(self._tokens[role]), version_id)

    def sync_token(self, role: Role, version_id: str) -> None:
        """The node stores the cluster's current token as pending ``version_id``."""
        self._command_manager()
        self._stored[(role, version_id)] = self._tokens[role]
        self._store_token(role, SecretStr(self._tokens[role]), version_id)

    def token_works(self, role: Role, version_id: str) -> bool:
        """Compare the vault's pending version (``read_pending``) with the cluster's current token.

        Without ``read_pending`` the simulation compares what it handed to ``store_token`` for that version.
        """
        self._command_manager()
        if self._read_pending is not None:
            secret = self._read_pending(role, version_id)
            pending = None if secret is None else secret.get_secret_value()
        else:
            pending = self._stored.get((role, version_id))
        return pending is not None and hmac.compare_digest(pending, self._tokens[role])

    # === simulation controls ======================================================================

    def crash(self, instance_id: str) -> None:
        """The machine (or its dockerd) dies; it keeps its swarm state for ``restart``."""
        self._machine(instance_id).up = False
        self._settle()

    def restart(self, instance_id: str) -> None:
        self._machine(instance_id).up = True
        self._settle()

    def partition(self, instance_ids: Iterable[str]) -> None:
        """Cut these machines off from everyone else; they still reach each other."""
        segment = next(self._segments)
        for iid in instance_ids:
            self._machine(iid).segment = segment
        self._settle()

    def heal(self, instance_ids: Iterable[str]) -> None:
        """Reconnect these machines to the main network."""
        for iid in instance_ids:
            self._machine(iid).segment = MAIN_SEGMENT
        self._settle()

    def has_leader(self) -> bool:
        return self._leader is not None

    def leader(self) -> str | None:
        """The instance id of the Raft leader, if there is one."""
        return None if self._leader is None else self._nodes[self._leader].instance_id

    def node_id_of(self, instance_id: str) -> str | None:
        """The node id the instance has now, or had last (after a leave or removal); None if never."""
        return self._in_swarm.get(instance_id) or self._last_node.get(instance_id)

    def instance_of(self, node_id: str) -> str | None:
        node = self._nodes.get(node_id)
        return None if node is None else node.instance_id

    def joined_node(self, instance_id: str) -> str | None:
        """The port's question, asked of the machine: its node id while it is in a swarm (None if down)."""
        machine = self._machine(instance_id)
        if not self._answers(machine):
            return None
        return self._in_swarm.get(instance_id)

    def is_up(self, instance_id: str) -> bool:
        return self._machine(instance_id).up

    def in_swarm(self, instance_id: str) -> bool:
        """Does the machine's daemon hold swarm state (``docker info`` LocalNodeState active)?"""
        return instance_id in self._in_swarm

    def snapshot(self) -> list[dict[str, Any]]:
        """The member list with the simulation's hidden state, for printing and tests. No token."""
        out: list[dict[str, Any]] = []
        for node in sorted(self._nodes.values(), key=lambda n: n.node_id):
            machine = self._machines[node.instance_id]
            out.append(
                {
                    "node_id": node.node_id,
                    "instance_id": node.instance_id,
                    "role": node.role.value,
                    "status": "ready" if self._ready(node) else "down",
                    "availability": "active" if node.active else "drain",
                    "manager_status": self._manager_status(node),
                    "voter": node.voter,
                    "address": node.address,
                    "labels": dict(node.labels),
                    "machine_up": machine.up,
                    "segment": machine.segment,
                    "in_swarm": self._in_swarm.get(node.instance_id) == node.node_id,
                }
            )
        return out

    def valid_token(self, token: str | SecretStr) -> Role | None:
        """The role a token would join as now, or None (wrong, rotated, or another swarm's)."""
        value = token.get_secret_value() if isinstance(token, SecretStr) else token
        for role, current in self._tokens.items():
            if hmac.compare_digest(value.encode(), current.encode()):
                return role
        return None

    def force_new_cluster(self, instance_id: str) -> None:
        """``docker swarm init --force-new-cluster`` on a manager: it becomes the only Raft member.

        The other managers stay in the member list as managers out of Raft (to be demoted and removed);
        their daemons are out of the swarm. Workers stay. Tokens are unchanged.
        """
        self._reach(instance_id)
        node_id = self._in_swarm.get(instance_id)
        node = None if node_id is None else self._nodes[node_id]
        if node is None or node.role is not Role.MANAGER:
            raise NotAManager(f"force-new-cluster: {instance_id} is not a swarm manager")
        for other in self._voters():
            if other is not node:
                other.voter = False
                if self._in_swarm.get(other.instance_id) == other.node_id:
                    del self._in_swarm[other.instance_id]
        node.voter = True
        self._leader = node.node_id
        self._settle()

    # === internals ================================================================================

    def _machine(self, instance_id: str) -> _Machine:
        return self._machines.setdefault(instance_id, _Machine())

    def _reach(self, instance_id: str) -> _Machine:
        """A command to run on this machine: it must be up and on the control plane's side."""
        machine = self._machine(instance_id)
        if not self._answers(machine):
            raise Unreachable(f"{instance_id} does not answer")
        return machine

    @staticmethod
    def _answers(machine: _Machine) -> bool:
        return machine.up and machine.segment == MAIN_SEGMENT

    def _node(self, node_id: str) -> _Node:
        node = self._nodes.get(node_id)
        if node is None:
            raise NodeNotFound(f"no such node: {node_id}")
        return node

    def _voters(self) -> list[_Node]:
        return [n for n in self._nodes.values() if n.voter]

    def _voter_count(self) -> int:
        return sum(1 for n in self._nodes.values() if n.voter)

    def _alive(self, node: _Node) -> bool:
        """The node's machine is up and its daemon still holds this node's swarm state."""
        return self._machine(node.instance_id).up and self._in_swarm.get(node.instance_id) == node.node_id

    def _quorum_segment(self) -> int | None:
        """The one segment holding a majority of the voters that are alive, if any."""
        voters = self._voters()
        if not voters:
            return None
        per_segment: dict[int, int] = {}
        for n in voters:
            if self._alive(n):
                seg = self._machines[n.instance_id].segment
                per_segment[seg] = per_segment.get(seg, 0) + 1
        need = len(voters) // 2 + 1
        return next((seg for seg, count in per_segment.items() if count >= need), None)

    def _connected(self, node: _Node) -> bool:
        """Alive and in the leader's segment."""
        segment = self._quorum_segment()
        return (
            segment is not None and self._alive(node) and self._machines[node.instance_id].segment == segment
        )

    def _settle(self) -> None:
        """After any change: Raft membership of pending promotions, leader election, status clocks."""
        segment = self._quorum_segment()
        if segment is None:
            self._leader = None
            return
        now = self._clock.now()
        for node in self._nodes.values():
            linked = self._alive(node) and self._machines[node.instance_id].segment == segment
            if linked:
                node.lost_since = None
                if node.role is Role.MANAGER and not node.voter:
                    node.voter = True  # a promotion (or a force-new-cluster survivor) completes
            elif node.lost_since is None:
                node.lost_since = now
        leader = None if self._leader is None else self._nodes.get(self._leader)
        if leader is None or not leader.voter or not self._connected(leader):
            self._leader = min(n.node_id for n in self._voters() if self._connected(n))

    def _command_manager(self) -> _Node:
        """The manager a cluster command runs on: one that answers the control plane and sees the leader."""
        managers = [
            n for n in self._voters() if self._alive(n) and self._answers(self._machines[n.instance_id])
        ]
        if not managers:
            raise Unreachable("no manager answers")
        connected = [n for n in managers if self._connected(n)]
        if not connected:
            raise NoLeader("the swarm does not have a leader")
        return connected[0]

    def _contact(self, joiner: _Machine, addresses: Sequence[str]) -> _Node | None:
        """The first manager of the ticket that the joining machine can reach over the swarm network."""
        for address in addresses:
            host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
            for n in self._voters():
                if (
                    n.address == host
                    and self._alive(n)
                    and self._machines[n.instance_id].segment == joiner.segment
                ):
                    return n
        return None

    def _ready(self, node: _Node) -> bool:
        if node.lost_since is None:
            return True
        return self._clock.now() - node.lost_since < self._down_delay

    def _manager_status(self, node: _Node) -> str | None:
        if node.role is not Role.MANAGER:
            return None
        if node.node_id == self._leader:
            return "leader"
        return "reachable" if node.voter and self._ready(node) else "unreachable"

    def _member(self, node: _Node) -> Member:
        status = self._manager_status(node)
        return Member(
            node_id=node.node_id,
            hostname=node.instance_id,
            role=node.role,
            ready=self._ready(node),
            available=node.active,
            reachable=status in {None, "leader", "reachable"},
            leader=status == "leader",
            in_raft=node.voter,
            address=node.address,
            labels=dict(node.labels),
            instance_id=node.labels.get("instance-id"),
        )

    def _add_node(self, instance_id: str, role: Role, address: str) -> _Node:
        node_id = self._base36(self._ids, NODE_ID_LENGTH)
        while node_id in self._nodes:  # pragma: no cover - 36**25 ids
            node_id = self._base36(self._ids, NODE_ID_LENGTH)
        node = _Node(node_id, instance_id, role, address, voter=role is Role.MANAGER)
        self._nodes[node_id] = node
        self._in_swarm[instance_id] = node_id
        self._last_node[instance_id] = node_id
        self._machine(instance_id)
        return node

    def _new_token(self) -> str:
        return f"SWMTKN-1-{self._ca}-{self._base36(self._secrets, TOKEN_SECRET_LENGTH)}"

    @staticmethod
    def _base36(rng: random.Random, length: int) -> str:
        return "".join(rng.choice(BASE36) for _ in range(length))
