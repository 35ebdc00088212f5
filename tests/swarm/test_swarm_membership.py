"""The real Swarm adapter against a real lab swarm that autojoin itself bootstraps.

One cluster ("alpha": 3 managers over a/b/c + 2 workers) is grown by the first test and reused by the
next ones, in file order; the last test kills its majority. Tokens travel only through moto's Secrets
Manager and the hand-off table, into the agent on the node.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from autojoin.adapters.swarm.orchestrator import SwarmOrchestrator
from autojoin.domain.model import Role
from autojoin.errors import (
    AlreadyInSwarm,
    InvalidJoinToken,
    LastManager,
    MustDemoteFirst,
    NodeNotDown,
    NodeNotFound,
    NoLeader,
    NotAManager,
    NoTicket,
)
from autojoin.ports import Member

from .swarm_support import TABLE, Cluster, eventually, raises_eventually

pytestmark = pytest.mark.swarm


@pytest.fixture(scope="module")
def alpha(new_cluster: Callable[[str], Cluster]) -> Cluster:
    return new_cluster("alpha")


def by_instance(members: list[Member] | tuple[Member, ...]) -> dict[str | None, Member]:
    return {m.instance_id: m for m in members}


def test_bootstrap_from_nothing_and_joins_with_role_tokens(alpha: Cluster) -> None:
    alpha.grow(["a", "b", "c"], ["a", "b"])
    members = by_instance(list(alpha.orch.members()))
    assert set(members) == {n.instance_id for n in alpha.nodes}
    roles = {n.instance_id: members[n.instance_id].role for n in alpha.nodes}
    assert [roles[n.instance_id] for n in alpha.nodes] == [Role.MANAGER] * 3 + [Role.WORKER] * 2
    assert sum(m.leader for m in members.values()) == 1
    assert all(m.ready and m.available and m.reachable for m in members.values())
    for n in alpha.nodes:
        m = members[n.instance_id]
        assert m.labels == {"instance-id": n.instance_id, "az": n.az}
        assert m.address == n.address
    # each role's token is in its own secret, and every ticket was taken (read-once)
    assert alpha.token(Role.MANAGER).startswith("SWMTKN-1-")
    assert alpha.token(Role.WORKER).startswith("SWMTKN-1-")
    assert alpha.token(Role.MANAGER) != alpha.token(Role.WORKER)
    db = alpha.aws.client("dynamodb")
    assert db.scan(TableName=TABLE)["Count"] == 0


def test_join_errors_no_ticket_expired_ticket_already_in_swarm(alpha: Cluster) -> None:
    worker = alpha.nodes[3]
    with pytest.raises(NoTicket):
        alpha.orch.join(worker.instance_id, Role.WORKER)  # no ticket at all
    alpha.offer(worker, Role.WORKER, ttl=-60)
    with pytest.raises(NoTicket):
        alpha.orch.join(worker.instance_id, Role.WORKER)  # expired, not yet deleted by TTL
    alpha.offer(worker, Role.WORKER)
    with pytest.raises(AlreadyInSwarm):
        alpha.orch.join(worker.instance_id, Role.WORKER)
    assert alpha.orch.node_info(worker.instance_id)["state"] == "active"


def test_refusals_map_to_the_projects_errors(alpha: Cluster) -> None:
    members = by_instance(list(alpha.orch.members()))
    manager = members[alpha.nodes[1].instance_id]
    worker = members[alpha.nodes[3].instance_id]
    with pytest.raises(MustDemoteFirst):
        alpha.orch.remove(manager.node_id)
    with pytest.raises(NodeNotDown):
        alpha.orch.remove(worker.node_id)
    with pytest.raises(NodeNotFound):
        alpha.orch.label("nosuchnode", {"az": "a"})
    with pytest.raises(NodeNotFound):
        alpha.orch.promote("nosuchnode")
    with pytest.raises(MustDemoteFirst):
        alpha.orch.leave(alpha.nodes[1].instance_id)  # a manager refuses `swarm leave` without --force
    on_worker = SwarmOrchestrator(alpha.runner, lambda: [alpha.nodes[3].instance_id])
    with pytest.raises(NotAManager):
        on_worker.members()
    alpha.orch.drain(worker.node_id)
    assert not by_instance(list(alpha.orch.members()))[alpha.nodes[3].instance_id].available


def test_rotation_makes_the_old_token_invalid(alpha: Cluster) -> None:
    sm = alpha.aws.client("secretsmanager")
    old = alpha.token(Role.WORKER)
    version = str(uuid.uuid4())
    alpha.orch.rotate_token(Role.WORKER, version)
    assert alpha.orch.token_works(Role.WORKER, version)
    pending = alpha.token(Role.WORKER, "AWSPENDING")
    assert pending != old and pending.startswith("SWMTKN-1-")
    alpha.orch.rotate_token(Role.WORKER, version)  # a retried step changes nothing
    assert alpha.token(Role.WORKER, "AWSPENDING") == pending
    newcomer = alpha.add("c")
    alpha.offer(newcomer, Role.WORKER, token=old)
    with pytest.raises(InvalidJoinToken):
        alpha.orch.join(newcomer.instance_id, Role.WORKER)
    current = next(v for v in sm.list_secret_version_ids(SecretId=alpha.secret_id(Role.WORKER))["Versions"]
                   if "AWSCURRENT" in v.get("VersionStages", []))["VersionId"]  # fmt: skip
    sm.update_secret_version_stage(
        SecretId=alpha.secret_id(Role.WORKER),
        VersionStage="AWSCURRENT",
        MoveToVersionId=version,
        RemoveFromVersionId=current,
    )
    alpha.join(newcomer, Role.WORKER)
    assert by_instance(list(alpha.orch.members()))[newcomer.instance_id].role is Role.WORKER
    other = str(uuid.uuid4())
    assert not alpha.orch.token_works(Role.MANAGER, other)  # no such pending version


def test_worker_leaves_and_is_removed_once_down(alpha: Cluster) -> None:
    worker = alpha.nodes[4]
    node_id = by_instance(list(alpha.orch.members()))[worker.instance_id].node_id
    alpha.orch.leave(worker.instance_id)
    alpha.orch.leave(worker.instance_id)  # in no swarm any more: nothing to do

    def removed() -> bool:  # refused (raises) while Swarm still sees the node up
        alpha.orch.remove(node_id)
        return True

    eventually(removed, what="node rm after leave")
    assert worker.instance_id not in by_instance(list(alpha.orch.members()))
    alpha.orch.remove(node_id)  # already gone: done


def test_graceful_manager_removal_demote_leave_remove(alpha: Cluster) -> None:
    extra = alpha.add("a")
    alpha.join(extra, Role.MANAGER)
    node_id = by_instance(list(alpha.orch.members()))[extra.instance_id].node_id
    alpha.orch.demote(node_id)
    alpha.managers.remove(extra)
    assert by_instance(list(alpha.orch.members()))[extra.instance_id].role is Role.WORKER
    alpha.orch.leave(extra.instance_id)

    def removed() -> bool:  # refused (raises) while Swarm still sees the node up
        alpha.orch.remove(node_id)
        return True

    eventually(removed, what="node rm of the demoted manager")
    members = list(alpha.orch.members())
    assert extra.instance_id not in by_instance(members)
    assert sum(m.role is Role.MANAGER for m in members) == 3


def test_last_manager_cannot_be_demoted_or_leave(new_cluster: Callable[[str], Cluster]) -> None:
    solo = new_cluster("solo")
    node = solo.add("a")
    node_id = solo.bootstrap(node)
    with pytest.raises(LastManager):
        solo.orch.demote(node_id)
    with pytest.raises(LastManager):
        solo.orch.leave(node.instance_id)
    with pytest.raises(MustDemoteFirst):
        solo.orch.remove(node_id)
    with pytest.raises(AlreadyInSwarm):
        solo.orch.init(node.instance_id, node.address)
    solo.orch.leave(node.instance_id, force=True)
    assert solo.orch.node_info(node.instance_id)["state"] == "inactive"


def test_no_leader_once_a_majority_is_killed_and_back_after_restart(alpha: Cluster) -> None:
    assert len(alpha.managers) == 3
    survivor, *victims = alpha.managers
    for victim in victims:
        alpha.lab.kill(victim)
    raises_eventually(alpha.orch.members, NoLeader, what="NoLeader after killing 2 of 3 managers")
    for victim in victims:
        alpha.lab.start(victim)
    members = eventually(alpha.orch.members, what="a leader again after restarting them")
    assert sum(m.leader for m in members) == 1
    assert survivor.instance_id in by_instance(list(members))
