"""A LaunchService wired to in-memory fakes and the SimSwarm, for the join-path edge tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tests.fakes import FakeFleet, FakeHandOff, FakeState, FakeVault

from autojoin.adapters.sim.clock import SimClock
from autojoin.adapters.sim.swarm import SimSwarm
from autojoin.domain.model import LifecycleAction, LifecycleKind, Role
from autojoin.ports import Member
from autojoin.services.launch import LaunchConfig, LaunchService

ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


@dataclass
class World:
    fleet: FakeFleet
    vault: FakeVault
    handoff: FakeHandOff
    state: FakeState
    swarm: SimSwarm
    service: LaunchService
    clock: SimClock
    n: int = 0

    def node_of(self, instance_id: str) -> str:
        """The swarm node id of an instance that joined (a test about a node that never joined fails)."""
        node = self.swarm.node_id_of(instance_id)
        assert node is not None, f"{instance_id} is no swarm member"
        return node

    def launch(self, role: Role, az: str, group: str | None = None) -> LifecycleAction:
        self.n += 1
        iid = f"i-{self.n:017x}"
        group = group or ("mgr" if role is Role.MANAGER else "wrk")
        self.fleet.launch(iid, group, az, f"10.0.0.{self.n}")
        return LifecycleAction(
            kind=LifecycleKind.LAUNCHING,
            group=group,
            instance_id=iid,
            hook="autojoin-launch",
            token=f"tok-{self.n}",
            event_id=f"ev-{self.n}",
        )

    def gone(self, instance_id: str) -> None:
        self.fleet.by_id[instance_id] = self.fleet.by_id[instance_id].model_copy(
            update={"state": "terminated"}
        )


def make_world(
    *, join_wait: float = 60.0, poll_interval: float = 2.0, worker_zones: Sequence[str] = ZONES
) -> World:
    clock = SimClock()
    fleet = FakeFleet()
    fleet.add_group("mgr", "demo", Role.MANAGER, ZONES)
    fleet.add_group("wrk", "demo", Role.WORKER, worker_zones)
    vault, handoff, state = FakeVault(), FakeHandOff(), FakeState()
    swarm = SimSwarm(
        clock,
        take_ticket=handoff.take,
        store_token=vault.store,
        address_of=lambda iid: fleet.by_id[iid].private_ip or "",
        read_pending=vault.pending,
    )
    service = LaunchService(
        LaunchConfig(cluster="demo", join_wait=join_wait, poll_interval=poll_interval),
        fleet=fleet,
        vault=vault,
        handoff=handoff,
        orchestrator=swarm,
        state=state,
        clock=clock,
    )
    return World(fleet, vault, handoff, state, swarm, service, clock)


def members_seen_as(
    real: Callable[[], Sequence[Member]], node_ids: Callable[[], set[str]], **override: object
) -> Callable[[], Sequence[Member]]:
    """``members()`` as the orchestrator would report it while the nodes in ``node_ids()`` differ."""

    def members() -> Sequence[Member]:
        odd = node_ids()
        return [replace(m, **override) if m.node_id in odd else m for m in real()]  # type: ignore[arg-type]

    return members


def members_hiding(
    real: Callable[[], Sequence[Member]], node_ids: Callable[[], set[str]]
) -> Callable[[], Sequence[Member]]:
    """``members()`` as the orchestrator would report it before it lists the nodes in ``node_ids()``."""

    def members() -> Sequence[Member]:
        hidden = node_ids()
        return [m for m in real() if m.node_id not in hidden]

    return members
