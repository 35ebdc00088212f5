"""A RemovalService over the SimSwarm (a cluster built through the sim harness) and in-memory fakes, for
the removal tests."""

from __future__ import annotations

from tests.fakes import FakeFleet, FakeState
from tests.unit.sim.sim_harness import Harness

from autojoin.domain.model import InstanceInfo, LifecycleAction, LifecycleKind, Role
from autojoin.services.removal import RemovalConfig, RemovalService

ZONES = ("a", "b", "c")
MANAGERS = {"i-m1": "a", "i-m2": "b", "i-m3": "c", "i-m4": "a", "i-m5": "b"}  # 2-2-1


class World:
    def __init__(self, managers: int = 5, workers: int = 1, *, desired: int | None = None) -> None:
        self.h = Harness()
        mids, wids = self.h.cluster(managers, workers)
        self.fleet = FakeFleet()
        self.fleet.add_group("demo-manager", "demo", Role.MANAGER, ZONES)
        self.fleet.add_group("demo-worker", "demo", Role.WORKER, ZONES)
        g = self.fleet.groups["demo-manager"]
        self.fleet.groups["demo-manager"] = g.model_copy(
            update={"desired": managers if desired is None else desired}
        )
        for k, iid in enumerate(mids + wids):
            group = "demo-manager" if iid in mids else "demo-worker"
            az = MANAGERS.get(iid, ZONES[k % 3])
            self.fleet.by_id[iid] = InstanceInfo(
                instance_id=iid, az=az, group=group, lifecycle_state="InService", protected_from_scale_in=True
            )
            self.h.swarm.label(self.h.nid(iid), {"instance-id": iid, "az": az, "asg": group})
        self.state = FakeState()
        self.svc = RemovalService(
            RemovalConfig(cluster="demo", manager_group="demo-manager", worker_group="demo-worker"),
            fleet=self.fleet,
            orchestrator=self.h.swarm,
            state=self.state,
            clock=self.h.clock,
        )

    def terminate(self, iid: str, hook: str = "autojoin-terminate") -> LifecycleAction:
        info = self.fleet.by_id[iid]
        self.fleet.by_id[iid] = info.model_copy(update={"lifecycle_state": "Terminating:Wait"})
        self.fleet.open_actions.add(iid)
        return LifecycleAction(
            kind=LifecycleKind.TERMINATING,
            group=info.group or "",
            instance_id=iid,
            hook=hook,
            token=f"t-{iid}",
        )

    def roles(self) -> dict[str, Role]:
        return {m.instance_id or "": m.role for m in self.h.swarm.members()}
