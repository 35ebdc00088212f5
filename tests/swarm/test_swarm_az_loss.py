"""The source text's claim on a real swarm: 5 managers as 2-2-1 over three AZs survive losing any AZ;
as 3-2 over two AZs they die with the bigger one. Both clusters lose a zone at the same moment.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autojoin.domain.model import Role
from autojoin.errors import NoLeader

from .swarm_support import Cluster, eventually, raises_eventually

pytestmark = pytest.mark.swarm


def test_zone_loss_221_keeps_a_leader_and_32_loses_it(new_cluster: Callable[[str], Cluster]) -> None:
    spread = new_cluster("spread-221")
    spread.grow(["p-a", "p-a", "p-b", "p-b", "p-c"])
    lopsided = new_cluster("lopsided-32")
    lopsided.grow(["q-a", "q-a", "q-a", "q-b", "q-b"])
    for cluster in (spread, lopsided):
        members = cluster.orch.members()
        assert sum(m.role is Role.MANAGER and m.reachable for m in members) == 5

    lab = spread.lab
    lost = {n.instance_id for n in lab.cut_zone("p-a")} | {n.instance_id for n in lab.cut_zone("q-a")}
    try:
        raises_eventually(lopsided.orch.members, NoLeader, what="3-2 without its 3-manager AZ: no leader")

        def spread_noticed_and_has_a_leader() -> bool:
            members = spread.orch.members()  # raises NoLeader if the survivors had lost quorum
            cut = [m for m in members if m.instance_id in lost]
            return (
                len(cut) == 2
                and not any(m.reachable for m in cut)
                and sum(m.leader for m in members if m.instance_id not in lost) == 1
            )

        eventually(spread_noticed_and_has_a_leader, what="2-2-1 without one AZ: a leader among 3 reachable")
        # and it still accepts changes: label a survivor
        survivor = next(m for m in spread.orch.members() if m.instance_id not in lost)
        spread.orch.label(survivor.node_id, {"zone-loss": "survived"})
        assert next(m for m in spread.orch.members() if m.node_id == survivor.node_id).labels["zone-loss"]
    finally:
        lab.heal_zone("p-a")
        lab.heal_zone("q-a")
