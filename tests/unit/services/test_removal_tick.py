"""RemovalService's periodic pass as whole results: the TickReport, the dead nodes it removed or kept and
why, the manager it released, the lease it took (and gave back) under its own holder name, and how often
it read the groups and the orchestrator (a pass reads the cluster's groups once, not per group)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.unit.services.removal_world import World

from autojoin.domain.model import ClusterView, InstanceInfo, Node, Role
from autojoin.errors import LeaseLost, NodeNotDown, Unreachable
from autojoin.ports import FleetRead, Member
from autojoin.services.removal import DeadNode, Outcome, RemovalDecision, TickReport, view_of

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def count_members(w: World) -> list[int]:
    """Every ``members()`` read (a remote command on a manager)."""
    reads: list[int] = []
    real = w.h.swarm.members

    def members() -> Sequence[Member]:
        reads.append(1)
        return real()

    w.h.swarm.members = members  # type: ignore[method-assign]
    return reads


def gone(w: World, iid: str) -> None:
    """The machine died and EC2 terminated it; its node shows Down."""
    w.h.swarm.crash(iid)
    w.fleet.by_id[iid] = w.fleet.by_id[iid].model_copy(update={"state": "terminated"})


def set_state(w: World, iid: str, **update: Any) -> None:
    w.fleet.by_id[iid] = w.fleet.by_id[iid].model_copy(update=update)


# --- the pass -----------------------------------------------------------------------------------------


def test_a_quiet_tick_reads_the_groups_once_and_snapshots_the_manager_zones_only() -> None:
    w = World(workers=2)
    w.fleet.groups["demo-worker"] = w.fleet.groups["demo-worker"].model_copy(
        update={"zones": ("a", "b", "c", "x")}
    )
    w.fleet.reads.clear()
    reads = count_members(w)
    assert w.svc.tick("guard") == TickReport(margin=2)
    assert w.fleet.reads == ["read_cluster demo"]
    assert reads == [1]
    snap = w.state.views["demo"]
    assert snap.zones == ("a", "b", "c") and snap.taken_at == w.h.clock.now() and len(snap.nodes) == 7
    assert w.state.lease_asks == []


def test_a_tick_removes_a_dead_worker_and_reads_the_members_again_for_its_snapshot() -> None:
    w = World(workers=2)
    gone(w, "i-w1")
    w.h.clock.advance(30)
    node = w.h.nid("i-w1")
    w.fleet.reads.clear()
    reads = count_members(w)
    report = w.svc.tick("guard")
    assert report == TickReport(
        dead=(DeadNode(node, "i-w1", Role.WORKER, True, "demotion-effective leave-skipped-unreachable rm"),),
        margin=2,
    )
    assert w.fleet.reads == ["read_cluster demo"], "the dead node's instance is found in the groups read"
    assert len(reads) == 3, (
        "the pass's read, the wait for the (no-op) demotion, and the read after the removal"
    )
    assert w.state.views["demo"].node("i-w1") is None
    assert w.state.lease_asks == [("demo", "guard", 300)] * 2 and w.state.leases == {}


def test_a_tick_without_a_leader_reports_what_it_resumed_and_the_error() -> None:
    w = World(managers=3, desired=3)
    action = w.terminate("i-m3")
    assert w.svc.handle(action, "h1").outcome is Outcome.WAITING
    w.h.swarm.crash("i-m1")
    w.h.swarm.crash("i-m2")
    w.h.clock.advance(30)
    report = w.svc.tick("guard")
    assert report == TickReport(
        resumed=(
            RemovalDecision(
                Outcome.WAITING,
                "the swarm has no leader: nothing can change (waiting 30s of 2700s; hook kept alive)",
                "i-m3",
                Role.MANAGER,
                "c",
                error="NoLeader",
            ),
        ),
        error="NoLeader",
    )
    assert w.state.lease_asks[-1] == ("demo", "guard", 300) and w.state.leases == {}


def test_a_tick_that_swept_a_lost_terminate_reads_the_groups_again() -> None:
    w = World(workers=2)
    w.terminate("i-w2")  # its event never arrives
    w.fleet.reads.clear()
    report = w.svc.tick("guard")
    assert [(d.instance_id, d.outcome) for d in report.resumed] == [("i-w2", Outcome.REMOVED)]
    assert w.fleet.reads.count("read_cluster demo") == 2
    assert w.fleet.reads == [
        "read_cluster demo",
        "group demo-worker",
        "instance i-w2",
        "instance i-w2",
        "read_cluster demo",
    ]


def test_the_sweep_works_each_lost_action_once_and_only_in_groups_with_a_role() -> None:
    w = World(workers=3)
    w.fleet.add_group("roleless", "demo", None, ("a",))
    w.fleet.groups = {k: w.fleet.groups[k] for k in ("roleless", "demo-manager", "demo-worker")}
    w.fleet.by_id["i-r1"] = InstanceInfo(
        instance_id="i-r1", az="a", group="roleless", lifecycle_state="Terminating:Wait"
    )
    w.fleet.open_actions.add("i-r1")
    w.terminate("i-w1")
    set_state(w, "i-w2", lifecycle_state="Terminating:Proceed")  # answered already
    w.terminate("i-w3")
    swept = w.svc.sweep_unrecorded("guard")
    assert [(d.instance_id, d.outcome, d.role) for d in swept] == [
        ("i-w1", Outcome.REMOVED, Role.WORKER),
        ("i-w3", Outcome.REMOVED, Role.WORKER),
    ]
    assert "i-r1" in w.fleet.open_actions and "i-w2" in w.roles()
    assert w.fleet.reads[0] == "read_cluster demo"


def test_the_sweep_skips_recorded_removals_and_lists_the_ones_worked_on_the_way() -> None:
    """A waiting manager removal is worked by the sweep's first manager under the same lease: it is listed
    once, on its own (not nested under the other), and not worked a second time."""
    w = World(managers=5, desired=4)
    w.state.acquire_lease("demo", "busy", 300)
    waiting = w.terminate("i-m5")
    assert w.svc.handle(waiting, "h1").outcome is Outcome.WAITING
    w.state.release_lease("demo", "busy")
    w.terminate("i-m4")  # lost
    w.state.lease_asks.clear()
    swept = w.svc.sweep_unrecorded("guard")
    assert sorted((d.instance_id, d.outcome) for d in swept) == [
        ("i-m4", Outcome.REMOVED),
        ("i-m5", Outcome.REMOVED),
    ]
    assert all(d.also == () for d in swept)
    assert {h for _, h, _ in w.state.lease_asks} == {"guard"}


# --- waiting removals ---------------------------------------------------------------------------------


def test_resume_waiting_works_the_recorded_removals_under_its_own_lease() -> None:
    w = World(managers=3, desired=3)
    action = w.terminate("i-m3")
    w.svc.handle(action, "h1")
    w.state.lease_asks.clear()
    w.svc.config = replace(w.svc.config, lease_ttl=77)
    (again,) = w.svc.resume_waiting("guard")
    assert again.outcome is Outcome.WAITING
    assert w.state.lease_asks == [("demo", "guard", 77)] and w.state.leases == {}


def test_resume_waiting_does_nothing_while_another_change_holds_the_lease() -> None:
    w = World(managers=3, desired=3)
    w.svc.handle(w.terminate("i-m3"), "h1")
    w.state.acquire_lease("demo", "busy", 300)
    heartbeats = list(w.fleet.heartbeats)
    assert w.svc.resume_waiting("guard") == []
    assert w.fleet.heartbeats == heartbeats and w.state.leases == {"demo": "busy"}


def test_waiting_removals_whose_instance_moved_on_are_dropped_and_the_rest_still_worked() -> None:
    w = World(managers=5, desired=5)
    w.state.acquire_lease("demo", "busy", 300)
    actions = {iid: w.terminate(iid) for iid in ("i-m1", "i-m2", "i-m3", "i-m4")}
    for action in actions.values():
        assert w.svc.handle(action, "h").outcome is Outcome.WAITING
    w.state.release_lease("demo", "busy")
    del w.fleet.by_id["i-m1"]  # unknown to EC2 now
    set_state(w, "i-m2", state="terminated")
    set_state(w, "i-m3", lifecycle_state="Terminating:Proceed")  # answered elsewhere
    resumed = w.svc.resume_waiting("guard")
    assert [d.instance_id for d in resumed] == ["i-m4"]
    assert [a.instance_id for a, _ in w.state.removals("demo")] == []
    assert resumed[0].outcome is Outcome.REMOVED


def test_a_lost_lease_makes_the_rest_of_the_queue_wait_untouched() -> None:
    w = World(managers=5, desired=2)
    w.state.acquire_lease("demo", "busy", 300)
    for iid in ("i-m3", "i-m4", "i-m5"):
        w.svc.handle(w.terminate(iid), "h")
        w.h.clock.advance(10)
    w.state.release_lease("demo", "busy")
    tries = {"n": 0}
    real = w.state.acquire_lease

    def acquire(cluster: str, holder: str, ttl_seconds: int) -> bool:
        tries["n"] += 1
        return tries["n"] == 1 and real(cluster, holder, ttl_seconds)  # taken once, never renewed

    w.state.acquire_lease = acquire  # type: ignore[method-assign]
    resumed = w.svc.resume_waiting("guard")
    lost = str(LeaseLost("demo", "guard"))
    assert sorted((d.instance_id, d.outcome, d.error, d.reason) for d in resumed) == [
        ("i-m3", Outcome.WAITING, "LeaseLost", f"{lost} (waiting 30s of 2700s; hook kept alive)"),
        ("i-m4", Outcome.WAITING, "LeaseLost", f"{lost} (waiting 20s of 2700s; hook kept alive)"),
        ("i-m5", Outcome.WAITING, "LeaseLost", f"{lost} (waiting 10s of 2700s; hook kept alive)"),
    ]
    drained = [m.instance_id for m in w.h.swarm.members() if not m.available]
    assert len(drained) == 1, "the first was drained before its lease renewal failed; the others not touched"
    assert tries["n"] == 2


# --- dead nodes ---------------------------------------------------------------------------------------


def test_dead_managers_are_removed_one_after_the_other_on_the_view_left_by_each() -> None:
    w = World(managers=5)
    gone(w, "i-m4")
    gone(w, "i-m5")
    w.h.clock.advance(30)
    nodes = {iid: w.h.nid(iid) for iid in ("i-m4", "i-m5")}
    dead = w.svc.remove_dead_nodes("reconciler")
    steps = "demote demotion-effective leave-skipped-unreachable rm"
    assert sorted(dead, key=lambda d: d.instance_id) == [
        DeadNode(nodes["i-m4"], "i-m4", Role.MANAGER, True, steps),
        DeadNode(nodes["i-m5"], "i-m5", Role.MANAGER, True, steps),
    ]
    assert w.state.lease_asks[0] == ("demo", "reconciler", 300) and w.state.leases == {}


def seen_down(members: Sequence[Member], *instance_ids: str) -> list[Member]:
    """The member list with these nodes shown Down (as the orchestrator may show them for a while)."""
    return [replace(m, ready=False) if m.instance_id in instance_ids else m for m in members]


def test_a_dead_manager_whose_removal_would_cost_the_quorum_is_kept_and_the_next_still_looked_at() -> None:
    w = World(managers=3, workers=2)
    gone(w, "i-m3")
    gone(w, "i-w2")
    w.h.clock.advance(30)
    members = seen_down(w.h.swarm.members(), "i-m2")  # i-m2 shows Down but its machine runs
    members = sorted(members, key=lambda m: m.role is not Role.MANAGER)  # the manager first
    nodes = {iid: w.h.nid(iid) for iid in ("i-m3", "i-w2")}
    dead = w.svc.remove_dead_nodes("r", members)
    assert dead == [
        DeadNode(
            nodes["i-m3"],
            "i-m3",
            Role.MANAGER,
            False,
            "kept: it would leave 1 healthy of 2 managers (quorum 2)",
        ),
        DeadNode(nodes["i-w2"], "i-w2", Role.WORKER, True, "demotion-effective leave-skipped-unreachable rm"),
    ]
    assert w.roles()["i-m3"] is Role.MANAGER


def test_a_dead_node_the_swarm_will_not_remove_yet_is_reported_and_the_next_still_worked() -> None:
    w = World(managers=5, workers=2)
    gone(w, "i-m5")
    gone(w, "i-w2")
    w.h.clock.advance(30)

    def demote(node_id: str) -> None:
        raise Unreachable("ssm timed out")

    w.h.swarm.demote = demote  # type: ignore[method-assign]
    members = sorted(w.h.swarm.members(), key=lambda m: m.role is not Role.MANAGER)
    nodes = {iid: w.h.nid(iid) for iid in ("i-m5", "i-w2")}
    dead = w.svc.remove_dead_nodes("r", members)
    assert dead == [
        DeadNode(nodes["i-m5"], "i-m5", Role.MANAGER, False, "not removed yet: ssm timed out"),
        DeadNode(nodes["i-w2"], "i-w2", Role.WORKER, True, "demotion-effective leave-skipped-unreachable rm"),
    ]
    assert w.state.leases == {}


def test_only_down_nodes_whose_instance_is_gone_are_dead() -> None:
    """Ready with its instance terminated (not Down yet), Down with its instance running, not labelled
    by autojoin: none is dead. The groups read are asked first, EC2 only for what they do not list."""
    w = World(managers=3, workers=3)
    set_state(w, "i-w1", state="terminated")  # still Ready
    w.h.swarm.crash("i-w2")  # Down, machine running
    gone(w, "i-w3")
    w.h.clock.advance(30)
    members = [
        replace(m, instance_id=None, labels={}, hostname="ip-10-0-0-9") if m.instance_id == "i-w3" else m
        for m in w.h.swarm.members()
    ]
    read = w.fleet.read_cluster("demo")
    w.fleet.reads.clear()
    assert w.svc.remove_dead_nodes("r", members, read) == []
    assert w.fleet.reads == [] and w.state.lease_asks == []


def test_a_dead_node_outside_the_groups_read_is_checked_with_ec2() -> None:
    w = World(managers=3, workers=2)
    gone(w, "i-w1")
    w.h.swarm.crash("i-w2")
    w.h.clock.advance(30)
    set_state(w, "i-w1", group=None)
    set_state(w, "i-w2", group=None)  # running, only EC2 knows it
    read = w.fleet.read_cluster("demo")
    w.fleet.reads.clear()
    dead = w.svc.remove_dead_nodes("r", w.h.swarm.members(), read)
    assert [(d.instance_id, d.removed) for d in dead] == [("i-w1", True)]
    assert sorted(w.fleet.reads) == ["instance i-w1", "instance i-w2"]


def test_no_dead_node_is_touched_while_another_change_holds_the_lease() -> None:
    w = World(workers=1)
    gone(w, "i-w1")
    w.h.clock.advance(30)
    w.state.acquire_lease("demo", "busy", 300)
    assert w.svc.remove_dead_nodes("r") == []
    assert "i-w1" in w.roles() and w.state.leases == {"demo": "busy"}


# --- releasing a surplus manager ----------------------------------------------------------------------


def test_one_surplus_manager_is_released_by_name_under_the_lease() -> None:
    w = World(desired=4)
    w.state.lease_asks.clear()
    w.fleet.reads.clear()
    assert w.svc.release_surplus("guard") == ("i-m2", None)
    assert w.fleet.protection_calls == [("demo-manager", ("i-m2",), False)]
    assert w.state.lease_asks == [("demo", "guard", 300)] and w.state.leases == {}
    assert w.fleet.reads == ["group demo-manager", "instances demo-manager", "cluster_groups demo"]


def test_a_release_from_a_groups_read_and_a_view_asks_no_more_of_the_fleet() -> None:
    w = World(desired=4)
    read = w.fleet.read_cluster("demo")
    view = w.svc.view(w.h.swarm.members(), read)
    w.fleet.reads.clear()
    assert w.svc.release_surplus("guard", view, read) == ("i-m2", None)
    assert w.fleet.reads == []


def test_a_manager_group_missing_from_the_read_is_asked_for_by_name() -> None:
    w = World(desired=4)
    read = FleetRead((w.fleet.groups["demo-worker"],), {"demo-worker": ()})
    view = w.svc.view(w.h.swarm.members(), read)
    w.fleet.reads.clear()
    assert w.svc.release_surplus("guard", view, read) == ("i-m2", None)
    assert w.fleet.reads == ["group demo-manager", "instances demo-manager"]


def test_no_manager_group_no_release() -> None:
    w = World(desired=4)
    del w.fleet.groups["demo-manager"]
    assert w.svc.release_surplus("guard") == (None, None)
    assert w.fleet.protection_calls == [] and w.state.lease_asks == []


def test_a_released_manager_is_protected_again_once_the_group_wants_what_it_has() -> None:
    w = World(desired=5)
    w.fleet.set_protection("demo-manager", ["i-m4"], False)
    w.fleet.protection_calls.clear()
    assert w.svc.release_surplus("guard") == (None, None)
    assert w.fleet.protection_calls == [("demo-manager", ("i-m4",), True)]
    assert w.state.lease_asks == []


def test_nothing_is_released_while_one_is_released_or_a_change_is_under_way() -> None:
    for update in (
        {"lifecycle_state": "Terminating:Wait"},
        {"lifecycle_state": "Terminating:Proceed"},
        {"lifecycle_state": "Pending"},
    ):
        w = World(desired=4)
        w.fleet.by_id["i-m9"] = InstanceInfo(instance_id="i-m9", az="c", group="demo-manager", **update)
        w.fleet.groups["demo-manager"] = w.fleet.groups["demo-manager"].model_copy(update={"desired": 4})
        assert w.svc.release_surplus("guard") == (None, None), update
        assert w.fleet.protection_calls == [] and w.state.lease_asks == [], update


def test_an_instance_outside_capacity_that_is_not_terminating_does_not_block_a_release() -> None:
    w = World(desired=4)
    w.fleet.by_id["i-m9"] = InstanceInfo(
        instance_id="i-m9", az="c", group="demo-manager", lifecycle_state="Detaching"
    )
    w.fleet.by_id["i-m8"] = InstanceInfo(
        instance_id="i-m8", az="c", group="demo-manager", lifecycle_state="Standby"
    )
    assert w.svc.release_surplus("guard") == ("i-m2", None)


def test_an_instance_without_a_lifecycle_state_counts_as_in_service() -> None:
    w = World(desired=4)
    set_state(w, "i-m5", lifecycle_state=None)
    assert w.svc.release_surplus("guard") == (None, None), "5 live but 4 in service: a launch is under way"


def test_a_release_waits_while_another_change_holds_the_lease() -> None:
    w = World(desired=4)
    w.state.acquire_lease("demo", "busy", 300)
    assert w.svc.release_surplus("guard") == (None, None)
    assert w.fleet.protection_calls == []


def test_why_no_manager_may_go_is_given() -> None:
    w = World(managers=3, desired=1)
    assert w.svc.release_surplus("guard") == (
        None,
        "the manager group wants 1 and has 3: no manager may go "
        "(would leave 2 healthy managers, below MinManagers 3)",
    )


@pytest.mark.parametrize(
    ("fields", "steps"),
    [
        ({"instance_id": None}, "demote demotion-effective leave-skipped-unreachable rm"),  # from its label
        ({"labels": {}}, "demote demotion-effective leave-skipped-unreachable rm"),  # from instance_id
        ({"instance_id": None, "labels": {}}, "demote demotion-effective rm"),  # no id: nothing to leave
    ],
    ids=["label-only", "instance-id-only", "hostname-only"],
)
def test_a_dead_node_leaves_by_whichever_instance_id_it_shows(fields: dict[str, Any], steps: str) -> None:
    w = World(managers=5)
    gone(w, "i-m5")
    w.h.clock.advance(30)
    node = w.h.nid("i-m5")
    members = [replace(m, hostname="i-m5", **fields) if m.node_id == node else m for m in w.h.swarm.members()]
    assert w.svc.remove_dead_nodes("r", members) == [DeadNode(node, "i-m5", Role.MANAGER, True, steps)]


def test_the_view_of_a_member_list() -> None:
    members = [
        Member(
            "n1",
            "h1",
            Role.MANAGER,
            True,
            True,
            True,
            leader=True,
            in_raft=True,
            address="10.0.0.1",
            labels={"az": "a", "asg": "mgr", "instance-type": "t3.small"},
            instance_id="i-1",
        ),
        Member("n2", "i-2", Role.WORKER, True, True, True, in_raft=True, labels={"instance-id": "i-2"}),
        Member("n3", "i-3", Role.MANAGER, False, False, False, in_raft=False),
        Member("n4", "i-4", Role.WORKER, True, True, True),
    ]
    view = view_of("demo", members, ("a", "b"), NOW)
    assert view == ClusterView(
        cluster="demo",
        nodes=(
            Node(
                instance_id="i-1",
                role=Role.MANAGER,
                az="a",
                group="mgr",
                node_id="n1",
                address="10.0.0.1",
                instance_type="t3.small",
                leader=True,
            ),
            Node(instance_id="i-2", role=Role.MANAGER, az="unknown", node_id="n2"),
            Node(
                instance_id="i-3",
                role=Role.MANAGER,
                az="unknown",
                healthy=False,
                node_id="n3",
                reachable=False,
                available=False,
            ),
            Node(instance_id="i-4", role=Role.WORKER, az="unknown", node_id="n4"),
        ),
        zones=("a", "b"),
        taken_at=NOW,
    )


def test_the_sweep_leaves_recorded_removals_to_resume_waiting_whatever_it_worked_before() -> None:
    w = World(managers=5, workers=2, desired=3)
    w.state.acquire_lease("demo", "busy", 300)
    waiting = w.terminate("i-m5")
    assert w.svc.handle(waiting, "h1").outcome is Outcome.WAITING
    w.state.release_lease("demo", "busy")
    w.fleet.groups = {k: w.fleet.groups[k] for k in ("demo-worker", "demo-manager")}  # workers listed first
    w.terminate("i-w1")  # lost
    swept = w.svc.sweep_unrecorded("guard")
    assert [(d.instance_id, d.outcome) for d in swept] == [("i-w1", Outcome.REMOVED)]
    assert [a.instance_id for a, _ in w.state.removals("demo")] == ["i-m5"]


def test_a_tick_that_keeps_its_dead_node_does_not_read_the_members_again() -> None:
    w = World(workers=2)
    gone(w, "i-w1")
    w.h.clock.advance(30)

    def remove(node_id: str) -> None:
        raise NodeNotDown("still listed as ready")

    w.h.swarm.remove = remove  # type: ignore[method-assign]
    node = w.h.nid("i-w1")
    reads = count_members(w)
    report = w.svc.tick("guard")
    assert report.dead == (
        DeadNode(
            node, "i-w1", Role.WORKER, False, "demotion-effective leave-skipped-unreachable rm-deferred"
        ),
    )
    assert len(reads) == 2, (
        "the pass's read and the wait for the (no-op) demotion; nothing removed, no re-read"
    )


def test_a_tick_sweeps_a_lost_manager_terminate_under_its_own_holder() -> None:
    w = World(managers=5, desired=3)
    w.terminate("i-m4")  # lost
    w.state.lease_asks.clear()
    report = w.svc.tick("guard")
    assert [(d.instance_id, d.outcome) for d in report.resumed] == [("i-m4", Outcome.REMOVED)]
    assert {holder for _, holder, _ in w.state.lease_asks} == {"guard"} and w.state.leases == {}


def test_a_tick_releases_under_its_own_holder_from_its_own_reads() -> None:
    w = World(managers=5, desired=4)
    w.fleet.reads.clear()
    w.state.lease_asks.clear()
    reads = count_members(w)
    assert w.svc.tick("guard") == TickReport(released="i-m2", margin=2)
    assert w.state.lease_asks == [("demo", "guard", 300)] and w.state.leases == {}
    assert w.fleet.reads == ["read_cluster demo"] and reads == [1]


def test_why_no_manager_may_go_lists_each_distinct_reason_once_sorted() -> None:
    w = World(managers=3, desired=2)
    shown = seen_down(w.h.swarm.members(), "i-m2", "i-m3")  # as the orchestrator showed them a moment ago
    view = w.svc.view(shown)
    assert w.svc.release_surplus("guard", view) == (
        None,
        "the manager group wants 2 and has 3: no manager may go (would leave 0 healthy managers, below "
        "MinManagers 3; would leave 1 healthy of 2 managers (quorum 2))",
    )
