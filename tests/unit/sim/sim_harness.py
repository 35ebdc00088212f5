"""A tiny world around SimSwarm for its tests: a hand-off, a token vault and addresses, all in memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from autojoin.adapters.sim import SimClock, SimSwarm
from autojoin.domain.model import Role
from autojoin.ports import JoinTicket

TOKEN_RE = r"^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$"
NODE_ID_RE = r"^[0-9a-z]{25}$"


@dataclass
class World:
    """The hand-off table, the vault and the network addresses SimSwarm is wired to."""

    clock: SimClock = field(default_factory=SimClock)
    tickets: dict[str, JoinTicket] = field(default_factory=dict)
    current: dict[Role, SecretStr] = field(default_factory=dict)
    pending: dict[tuple[Role, str], SecretStr] = field(default_factory=dict)
    stores: list[tuple[Role, str | None]] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)
    taken: list[str] = field(default_factory=list)

    def take_ticket(self, instance_id: str) -> JoinTicket | None:
        self.taken.append(instance_id)
        return self.tickets.pop(instance_id, None)

    def store_token(self, role: Role, token: SecretStr, version_id: str | None) -> None:
        assert isinstance(token, SecretStr)
        self.stores.append((role, version_id))
        if version_id is None:
            self.current[role] = token
        else:
            self.pending[(role, version_id)] = token

    def read_pending(self, role: Role, version_id: str) -> SecretStr | None:
        return self.pending.get((role, version_id))

    def address_of(self, instance_id: str) -> str:
        return self.addresses.setdefault(instance_id, f"10.0.0.{len(self.addresses) + 1}")

    def all_tokens(self) -> set[str]:
        values = [*self.current.values(), *self.pending.values()]
        return {v.get_secret_value() for v in values}


class Harness:
    """SimSwarm + World, with shortcuts to build clusters the way autojoin does (ticket, then join)."""

    def __init__(self, *, seed: int = 0, down_delay: float = 10.0, with_read_pending: bool = True) -> None:
        self.world = World()
        self.clock = self.world.clock
        self.swarm = SimSwarm(
            self.clock,
            take_ticket=self.world.take_ticket,
            store_token=self.world.store_token,
            address_of=self.world.address_of,
            read_pending=self.world.read_pending if with_read_pending else None,
            down_delay=down_delay,
            seed=seed,
        )

    def manager_addresses(self) -> tuple[str, ...]:
        out = [
            f"{row['address']}:2377"
            for row in self.swarm.snapshot()
            if row["role"] == "manager" and row["in_swarm"]
        ]
        return tuple(out)

    def offer(
        self,
        instance_id: str,
        role: Role,
        *,
        token: str | None = None,
        managers: tuple[str, ...] | None = None,
    ) -> None:
        secret = SecretStr(token) if token is not None else self.world.current[role]
        self.world.tickets[instance_id] = JoinTicket(
            role=role,
            token=secret,
            manager_addresses=self.manager_addresses() if managers is None else managers,
            cluster="demo",
        )

    def init(self, instance_id: str = "i-m1") -> str:
        return self.swarm.init(instance_id, self.world.address_of(instance_id))

    def add(self, instance_id: str, role: Role) -> str:
        self.offer(instance_id, role)
        return self.swarm.join(instance_id, role)

    def cluster(self, managers: int = 3, workers: int = 0) -> tuple[list[str], list[str]]:
        """i-m1..i-mN managers (i-m1 inits), i-w1..i-wM workers."""
        mids = [f"i-m{k}" for k in range(1, managers + 1)]
        wids = [f"i-w{k}" for k in range(1, workers + 1)]
        self.init(mids[0])
        for iid in mids[1:]:
            self.add(iid, Role.MANAGER)
        for iid in wids:
            self.add(iid, Role.WORKER)
        return mids, wids

    def nid(self, instance_id: str) -> str:
        node_id = self.swarm.node_id_of(instance_id)
        assert node_id is not None, f"{instance_id} never joined"
        return node_id

    def row(self, instance_id: str) -> dict[str, object]:
        node_id = self.nid(instance_id)
        return next(r for r in self.swarm.snapshot() if r["node_id"] == node_id)
