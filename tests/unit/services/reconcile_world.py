"""A ReconcileService wired to in-memory fakes and the SimSwarm (managers and workers joined through the
real LaunchService), for the reconciler's tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakes import FakeFleet, FakeHandOff, FakeState, FakeVault

from autojoin.adapters.sim.clock import SimClock
from autojoin.adapters.sim.swarm import SimSwarm
from autojoin.domain.model import LifecycleAction, LifecycleKind, Role
from autojoin.services.launch import LaunchConfig, LaunchService, Outcome
from autojoin.services.reconcile import ReconcileConfig, ReconcileService, RemoveDead

A, B, C = "us-east-1a", "us-east-1b", "us-east-1c"


@dataclass
class World:
    fleet: FakeFleet
    state: FakeState
    swarm: SimSwarm
    launch: LaunchService
    clock: SimClock
    n: int = 0

    def start(self, role: Role, az: str) -> str:
        """An instance launched into its group, Pending:Wait with an open action (its event not handled)."""
        self.n += 1
        iid = f"i-{self.n:017x}"
        self.fleet.launch(iid, "mgr" if role is Role.MANAGER else "wrk", az, f"10.0.0.{self.n}")
        return iid

    def action(self, iid: str) -> LifecycleAction:
        info = self.fleet.by_id[iid]
        return LifecycleAction(
            kind=LifecycleKind.LAUNCHING, group=info.group or "", instance_id=iid, hook="autojoin-launch"
        )

    def join(self, role: Role, az: str) -> str:
        iid = self.start(role, az)
        decision = self.launch.handle(self.action(iid))
        assert decision.outcome in {Outcome.JOINED, Outcome.BOOTSTRAPPED}, decision
        if role is Role.MANAGER:
            self.fleet.set_protection("mgr", [iid], True)
        return iid

    def service(
        self, *, dry_run: bool = False, remove_dead: RemoveDead | None = None, **config: Any
    ) -> ReconcileService:
        return ReconcileService(
            ReconcileConfig(cluster="demo", dry_run=dry_run, **config),
            fleet=self.fleet,
            orchestrator=self.swarm,
            state=self.state,
            clock=self.clock,
            launch=self.launch,
            remove_dead=remove_dead,
        )


def make_world(zones: tuple[str, ...], layout: dict[str, int], workers: int = 0) -> World:
    clock = SimClock()
    fleet = FakeFleet()
    fleet.add_group("mgr", "demo", Role.MANAGER, zones)
    fleet.add_group("wrk", "demo", Role.WORKER, zones)
    vault, handoff, state = FakeVault(), FakeHandOff(), FakeState()
    swarm = SimSwarm(
        clock,
        take_ticket=handoff.take,
        store_token=vault.store,
        address_of=lambda iid: fleet.by_id[iid].private_ip or "",
        read_pending=vault.pending,
    )
    launch = LaunchService(
        LaunchConfig(cluster="demo", join_wait=0),
        fleet=fleet,
        vault=vault,
        handoff=handoff,
        orchestrator=swarm,
        state=state,
        clock=clock,
    )
    w = World(fleet, state, swarm, launch, clock)
    for az, count in layout.items():
        for _ in range(count):
            w.join(Role.MANAGER, az)
    for k in range(workers):
        w.join(Role.WORKER, zones[k % len(zones)])
    mgr = fleet.groups["mgr"]
    fleet.groups["mgr"] = mgr.model_copy(update={"desired": sum(layout.values()), "max_size": 10})
    return w
