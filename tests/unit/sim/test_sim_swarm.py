"""SimSwarm keeps Docker Swarm's and Raft's rules: each test is one rule."""

from __future__ import annotations

import re

import pytest
from tests.unit.sim.sim_harness import NODE_ID_RE, TOKEN_RE, Harness

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
    OrchestratorError,
    Unreachable,
)
from autojoin.ports import Member, Orchestrator


def by_instance(h: Harness) -> dict[str, Member]:
    out = {}
    for m in h.swarm.members():
        iid = h.swarm.instance_of(m.node_id)
        assert iid is not None
        out[iid] = m
    return out


# --- init -----------------------------------------------------------------------------------------


def test_init_makes_the_only_manager_and_leader_and_stores_both_tokens() -> None:
    h = Harness()
    node_id = h.init("i-m1")
    assert isinstance(h.swarm, Orchestrator)
    assert re.match(NODE_ID_RE, node_id)
    assert h.world.stores == [(Role.MANAGER, None), (Role.WORKER, None)]
    [m] = h.swarm.members()
    assert (m.node_id, m.role, m.ready, m.available, m.reachable, m.leader) == (
        node_id,
        Role.MANAGER,
        True,
        True,
        True,
        True,
    )
    assert m.hostname == "i-m1"
    assert m.address == "10.0.0.1"
    assert h.swarm.leader() == "i-m1"
    assert h.swarm.has_leader()


def test_tokens_have_swarms_format_one_ca_part_and_a_secret_per_role() -> None:
    h = Harness()
    h.init()
    manager = h.world.current[Role.MANAGER].get_secret_value()
    worker = h.world.current[Role.WORKER].get_secret_value()
    assert re.match(TOKEN_RE, manager)
    assert re.match(TOKEN_RE, worker)
    assert manager.split("-")[2] == worker.split("-")[2]
    assert manager.split("-")[3] != worker.split("-")[3]
    assert h.swarm.valid_token(manager) is Role.MANAGER
    assert h.swarm.valid_token(worker) is Role.WORKER
    assert h.swarm.valid_token("SWMTKN-1-" + "0" * 50 + "-" + "0" * 25) is None
    assert h.swarm.valid_token(h.world.current[Role.WORKER]) is Role.WORKER  # SecretStr too


def test_init_twice_or_into_an_existing_swarm_is_refused() -> None:
    h = Harness()
    h.init("i-m1")
    with pytest.raises(AlreadyInSwarm):
        h.init("i-m1")
    with pytest.raises(CommandFailed):
        h.init("i-other")  # the simulation holds one swarm


def test_init_on_a_dead_machine_is_unreachable() -> None:
    h = Harness()
    h.swarm.crash("i-m1")
    with pytest.raises(Unreachable):
        h.init("i-m1")


def test_ids_and_tokens_are_deterministic_for_a_seed() -> None:
    a, b, c = Harness(seed=7), Harness(seed=7), Harness(seed=8)
    for h in (a, b, c):
        h.cluster(3, 2)
    ids = [sorted(r["node_id"] for r in h.swarm.snapshot()) for h in (a, b, c)]
    assert ids[0] == ids[1] != ids[2]
    assert a.world.all_tokens() == b.world.all_tokens() != c.world.all_tokens()
    assert all(re.match(NODE_ID_RE, n) for n in ids[0])
    assert len(set(ids[0])) == 5


# --- join -----------------------------------------------------------------------------------------


def test_managers_and_workers_join_through_their_tickets() -> None:
    h = Harness()
    mids, wids = h.cluster(3, 2)
    members = by_instance(h)
    assert {iid: m.role for iid, m in members.items()} == {
        "i-m1": Role.MANAGER,
        "i-m2": Role.MANAGER,
        "i-m3": Role.MANAGER,
        "i-w1": Role.WORKER,
        "i-w2": Role.WORKER,
    }
    assert all(m.ready and m.available and m.reachable for m in members.values())
    assert [iid for iid, m in members.items() if m.leader] == ["i-m1"]
    assert members["i-w2"].address == h.world.address_of("i-w2")
    assert h.world.tickets == {}  # every ticket was taken
    assert h.world.taken == [*mids[1:], *wids]


def test_join_without_a_ticket_fails_and_the_node_stays_out() -> None:
    h = Harness()
    h.init()
    with pytest.raises(NoTicket, match="no ticket"):
        h.swarm.join("i-w1", Role.WORKER)
    assert not h.swarm.in_swarm("i-w1")
    assert h.swarm.node_id_of("i-w1") is None


def test_a_ticket_is_read_once_even_when_the_join_fails() -> None:
    h = Harness()
    h.init()
    h.offer("i-w1", Role.WORKER, token="SWMTKN-1-" + "a" * 50 + "-" + "b" * 25)
    with pytest.raises(InvalidJoinToken):
        h.swarm.join("i-w1", Role.WORKER)
    assert "i-w1" not in h.world.tickets
    with pytest.raises(NoTicket, match="no ticket"):
        h.swarm.join("i-w1", Role.WORKER)


def test_a_ticket_for_another_role_is_refused() -> None:
    h = Harness()
    h.init()
    h.offer("i-w1", Role.WORKER)
    with pytest.raises(CommandFailed, match="role worker, not manager"):
        h.swarm.join("i-w1", Role.MANAGER)
    assert not h.swarm.in_swarm("i-w1")


def test_a_ticket_without_managers_is_refused() -> None:
    h = Harness()
    h.init()
    h.offer("i-w1", Role.WORKER, managers=())
    with pytest.raises(CommandFailed, match="no manager"):
        h.swarm.join("i-w1", Role.WORKER)


def test_the_token_not_the_ticket_decides_the_role() -> None:
    h = Harness()
    h.init()
    manager_token = h.world.current[Role.MANAGER].get_secret_value()
    h.offer("i-x", Role.WORKER, token=manager_token)
    node_id = h.swarm.join("i-x", Role.WORKER)
    assert {m.node_id: m.role for m in h.swarm.members()}[node_id] is Role.MANAGER


def test_joining_twice_is_already_in_swarm() -> None:
    h = Harness()
    h.cluster(1, 1)
    h.offer("i-w1", Role.WORKER)
    with pytest.raises(AlreadyInSwarm):
        h.swarm.join("i-w1", Role.WORKER)
    with pytest.raises(AlreadyInSwarm):
        h.init("i-w1")


def test_join_reaches_the_swarm_through_any_manager_of_the_ticket() -> None:
    h = Harness()
    h.cluster(3, 0)
    h.swarm.crash("i-m1")  # the first address is dead, the leader moves
    addresses = ("10.9.9.9:2377", f"{h.world.address_of('i-m1')}:2377", h.world.address_of("i-m3"))
    h.offer("i-w1", Role.WORKER, managers=addresses)
    assert h.swarm.join("i-w1", Role.WORKER) == h.nid("i-w1")


def test_join_with_no_manager_answering_is_unreachable() -> None:
    h = Harness()
    h.cluster(1, 0)
    h.offer("i-w1", Role.WORKER, managers=("10.9.9.9:2377",))
    with pytest.raises(Unreachable):
        h.swarm.join("i-w1", Role.WORKER)
    h.offer("i-w2", Role.WORKER)
    h.swarm.partition(["i-w2"])  # cut off from every manager
    with pytest.raises(Unreachable):
        h.swarm.join("i-w2", Role.WORKER)


def test_join_from_a_dead_machine_is_unreachable_and_keeps_its_ticket() -> None:
    h = Harness()
    h.cluster(1, 0)
    h.offer("i-w1", Role.WORKER)
    h.swarm.crash("i-w1")
    with pytest.raises(Unreachable):
        h.swarm.join("i-w1", Role.WORKER)
    assert "i-w1" in h.world.tickets  # the node never ran: nothing was taken


def test_join_needs_a_leader() -> None:
    h = Harness()
    h.cluster(3, 0)
    h.swarm.crash("i-m2")
    h.swarm.crash("i-m3")
    h.offer("i-w1", Role.WORKER)
    with pytest.raises(NoLeader):
        h.swarm.join("i-w1", Role.WORKER)


def test_a_new_manager_counts_toward_quorum_once_joined() -> None:
    h = Harness()
    h.cluster(2, 0)  # N=2: quorum 2
    h.add("i-m3", Role.MANAGER)  # N=3: quorum 2, so one may go
    h.swarm.crash("i-m1")
    assert h.swarm.has_leader()
    h.swarm.crash("i-m2")
    assert not h.swarm.has_leader()


def test_a_two_manager_swarm_dies_with_either_manager() -> None:
    h = Harness()
    h.cluster(2, 0)
    h.swarm.crash("i-m2")
    with pytest.raises(NoLeader):
        h.swarm.members()


# --- quorum and leadership ------------------------------------------------------------------------


def test_three_managers_survive_losing_one_not_two() -> None:
    h = Harness()
    h.cluster(3, 1)
    h.swarm.crash("i-m3")
    assert h.swarm.has_leader()
    assert len(h.swarm.members()) == 4
    h.swarm.crash("i-m2")
    assert not h.swarm.has_leader()
    assert h.swarm.leader() is None
    nid = h.nid("i-w1")
    for call in (
        h.swarm.members,
        lambda: h.swarm.label(nid, {"az": "a"}),
        lambda: h.swarm.promote(nid),
        lambda: h.swarm.demote(h.nid("i-m3")),
        lambda: h.swarm.drain(nid),
        lambda: h.swarm.remove(nid),
        lambda: h.swarm.rotate_token(Role.WORKER, "v2"),
        lambda: h.swarm.token_works(Role.WORKER, "v2"),
    ):
        with pytest.raises(NoLeader):
            call()
    h.swarm.restart("i-m2")
    assert h.swarm.has_leader()
    assert len(h.swarm.members()) == 4


def test_no_manager_machine_up_is_unreachable() -> None:
    h = Harness()
    h.cluster(3, 1)
    for iid in ("i-m1", "i-m2", "i-m3"):
        h.swarm.crash(iid)
    with pytest.raises(Unreachable):
        h.swarm.members()
    with pytest.raises(Unreachable):
        h.swarm.label(h.nid("i-w1"), {})


def test_a_lost_leader_is_replaced_by_the_reachable_manager_with_the_lowest_id() -> None:
    h = Harness()
    h.cluster(5, 0)
    h.swarm.crash("i-m1")
    rest = sorted(("i-m2", "i-m3", "i-m4", "i-m5"), key=h.nid)
    assert h.swarm.leader() == rest[0]
    h.swarm.crash(rest[0])
    assert h.swarm.leader() == rest[1]
    h.swarm.restart("i-m1")
    h.swarm.restart(rest[0])
    assert h.swarm.leader() == rest[1]  # a returning manager does not take leadership back
    [leader] = [m for m in h.swarm.members() if m.leader]
    assert h.swarm.instance_of(leader.node_id) == rest[1]


def test_members_are_read_from_any_reachable_manager() -> None:
    h = Harness()
    h.cluster(3, 0)
    h.swarm.crash("i-m1")
    assert {m.node_id for m in h.swarm.members()} == {h.nid(f"i-m{k}") for k in (1, 2, 3)}


def test_a_partitioned_leader_in_the_minority_loses_leadership() -> None:
    h = Harness()
    h.cluster(3, 1)
    h.swarm.partition(["i-m1"])
    assert h.swarm.leader() in {"i-m2", "i-m3"}
    h.clock.advance(10)
    assert h.row("i-m1")["status"] == "down"
    assert h.row("i-m1")["manager_status"] == "unreachable"
    h.swarm.heal(["i-m1"])
    assert h.row("i-m1")["status"] == "ready"
    assert h.row("i-m1")["manager_status"] == "reachable"


def test_a_cut_off_majority_keeps_a_leader_the_control_plane_cannot_see() -> None:
    h = Harness()
    h.cluster(5, 1)
    h.swarm.partition(["i-m3", "i-m4", "i-m5"])  # they still reach each other
    leader = h.swarm.leader()
    assert leader in {"i-m3", "i-m4", "i-m5"}
    with pytest.raises(NoLeader):  # i-m1, i-m2 answer, but have no leader
        h.swarm.members()
    with pytest.raises(Unreachable):
        h.swarm.leave("i-m3")  # commands do not reach a cut-off machine
    h.clock.advance(10)
    h.swarm.heal(["i-m3", "i-m4", "i-m5"])
    assert h.swarm.leader() == leader
    assert all(m.ready for m in h.swarm.members())


def test_a_cut_off_majority_marks_the_rest_down() -> None:
    h = Harness()
    h.cluster(5, 1)
    h.swarm.partition(["i-m1", "i-m2", "i-w1"])  # the control plane's side keeps i-m3..i-m5
    h.clock.advance(10)
    down = {r["instance_id"] for r in h.swarm.snapshot() if r["status"] == "down"}
    assert down == {"i-m1", "i-m2", "i-w1"}
    assert {iid for iid, m in by_instance(h).items() if not m.ready} == down


def test_a_split_into_minorities_has_no_leader() -> None:
    h = Harness()
    h.cluster(5, 0)
    h.swarm.partition(["i-m1", "i-m2"])
    h.swarm.partition(["i-m3", "i-m4"])
    with pytest.raises(NoLeader):
        h.swarm.members()
    h.swarm.heal(["i-m3"])
    assert not h.swarm.has_leader()  # main side: i-m3, i-m5 = 2 of 5
    h.swarm.heal(["i-m4"])
    assert h.swarm.has_leader()


@pytest.mark.parametrize("lose", ["crash", "partition"])
@pytest.mark.parametrize("az", ["a", "b", "c"])
def test_2_2_1_over_three_azs_survives_losing_any_az(lose: str, az: str) -> None:
    h = Harness()
    layout = {"a": ["i-m1", "i-m2"], "b": ["i-m3", "i-m4"], "c": ["i-m5"]}
    h.cluster(5, 0)
    if lose == "crash":
        for iid in layout[az]:
            h.swarm.crash(iid)
    else:
        h.swarm.partition(layout[az])
    assert h.swarm.has_leader()
    h.clock.advance(10)
    down = {iid for iid, m in by_instance(h).items() if not m.ready}
    assert down == set(layout[az])


def test_3_2_over_two_azs_dies_with_its_bigger_az() -> None:
    h = Harness()
    h.cluster(5, 0)
    for iid in ("i-m1", "i-m2", "i-m3"):
        h.swarm.crash(iid)
    assert not h.swarm.has_leader()
    with pytest.raises(NoLeader):
        h.swarm.members()


def test_3_2_with_its_bigger_az_cut_off_is_lost_to_the_control_plane() -> None:
    h = Harness()
    h.cluster(5, 0)
    h.swarm.partition(["i-m1", "i-m2", "i-m3"])  # the three still reach each other...
    assert h.swarm.leader() in {"i-m1", "i-m2", "i-m3"}
    with pytest.raises(NoLeader):  # ...but the two managers the control plane reaches have no leader
        h.swarm.members()
    h.offer("i-w1", Role.WORKER, managers=("10.0.0.4:2377",))
    with pytest.raises(NoLeader):
        h.swarm.join("i-w1", Role.WORKER)


def test_3_2_survives_losing_its_smaller_az() -> None:
    h = Harness()
    h.cluster(5, 0)
    h.swarm.crash("i-m4")
    h.swarm.crash("i-m5")
    assert h.swarm.has_leader()
    assert len(h.swarm.members()) == 5


# --- status: Ready, then Down only after the delay -------------------------------------------------


def test_a_crashed_node_shows_ready_until_the_delay_then_down() -> None:
    h = Harness(down_delay=10)
    h.cluster(3, 1)
    h.swarm.crash("i-w1")
    h.swarm.crash("i-m3")
    h.clock.advance(9.999)
    members = by_instance(h)
    assert members["i-w1"].ready and members["i-m3"].ready and members["i-m3"].reachable
    h.clock.advance(0.001)
    members = by_instance(h)
    assert not members["i-w1"].ready
    assert not members["i-m3"].ready and not members["i-m3"].reachable
    assert members["i-w1"].reachable  # a worker has no manager status
    h.swarm.restart("i-w1")
    h.swarm.restart("i-m3")
    members = by_instance(h)
    assert members["i-w1"].ready and members["i-m3"].ready and members["i-m3"].reachable


def test_down_delay_is_configurable() -> None:
    h = Harness(down_delay=0)
    h.cluster(1, 1)
    h.swarm.crash("i-w1")
    assert not by_instance(h)["i-w1"].ready
    with pytest.raises(ValueError, match="down_delay"):
        Harness(down_delay=-1)


def test_time_lost_without_a_leader_counts_from_when_a_leader_is_back() -> None:
    h = Harness()
    h.cluster(3, 1)
    h.swarm.crash("i-m2")
    h.swarm.crash("i-m3")
    h.swarm.crash("i-w1")  # nobody is watching
    h.clock.advance(100)
    h.swarm.restart("i-m2")  # a leader again; it starts its own timer for i-w1
    assert by_instance(h)["i-w1"].ready
    h.clock.advance(10)
    assert not by_instance(h)["i-w1"].ready


# --- remove, demote, promote, leave ---------------------------------------------------------------


def test_remove_needs_a_worker_that_is_down_and_is_done_for_an_unknown_node() -> None:
    h = Harness()
    h.cluster(3, 1)
    h.swarm.remove("0" * 25)  # not in the list: already removed (as SwarmOrchestrator)
    with pytest.raises(MustDemoteFirst):
        h.swarm.remove(h.nid("i-m3"))
    h.swarm.leave("i-w1")
    with pytest.raises(NodeNotDown):
        h.swarm.remove(h.nid("i-w1"))
    h.clock.advance(10)
    node_id = h.nid("i-w1")
    h.swarm.remove(node_id)
    assert node_id not in {m.node_id for m in h.swarm.members()}
    assert h.swarm.instance_of(node_id) is None
    assert h.swarm.node_id_of("i-w1") == node_id  # the last id it had


def test_graceful_manager_removal_drain_demote_leave_remove() -> None:
    h = Harness()
    h.cluster(3, 0)
    nid = h.nid("i-m3")
    h.swarm.drain(nid)
    with pytest.raises(MustDemoteFirst):
        h.swarm.leave("i-m3")  # a manager refuses `swarm leave` without --force
    h.swarm.demote(nid)
    h.swarm.leave("i-m3")
    h.clock.advance(10)
    h.swarm.remove(nid)
    members = h.swarm.members()
    assert [m.role for m in members] == [Role.MANAGER, Role.MANAGER]
    h.swarm.crash("i-m2")  # N=2 now: one loss is fatal
    assert not h.swarm.has_leader()


def test_the_last_manager_cannot_leave() -> None:
    h = Harness()
    h.cluster(1, 0)
    with pytest.raises(LastManager):
        h.swarm.leave("i-m1")
    assert h.swarm.in_swarm("i-m1")


def test_a_forced_leave_keeps_the_manager_as_an_unreachable_voter() -> None:
    h = Harness()
    h.cluster(3, 0)
    h.swarm.leave("i-m3", force=True)
    assert not h.swarm.in_swarm("i-m3")
    assert h.swarm.has_leader()
    h.clock.advance(10)
    m3 = by_instance(h)["i-m3"]
    assert m3.role is Role.MANAGER and not m3.reachable and not m3.ready
    h.swarm.crash("i-m2")  # N is still 3: 1 of 3 is no majority
    assert not h.swarm.has_leader()
    h.swarm.restart("i-m2")
    with pytest.raises(MustDemoteFirst):
        h.swarm.remove(h.nid("i-m3"))
    h.swarm.demote(h.nid("i-m3"))
    h.swarm.remove(h.nid("i-m3"))
    assert len(h.swarm.members()) == 2


def test_commands_do_not_reach_a_cut_off_machine() -> None:
    h = Harness()
    h.cluster(3, 1)
    h.swarm.partition(["i-w1", "i-new"])
    h.offer("i-new", Role.WORKER)
    for call in (
        lambda: h.swarm.leave("i-w1"),
        lambda: h.swarm.join("i-new", Role.WORKER),
        lambda: h.init("i-new"),
    ):
        with pytest.raises(Unreachable):
            call()
    h.swarm.partition(["i-m1", "i-m2", "i-m3"])
    with pytest.raises(Unreachable):
        h.swarm.members()  # no manager answers


def test_the_last_manager_cannot_be_demoted() -> None:
    h = Harness()
    h.cluster(1, 1)
    with pytest.raises(LastManager):
        h.swarm.demote(h.nid("i-m1"))
    h.swarm.demote(h.nid("i-w1"))  # already a worker: nothing to do
    assert {m.role for m in h.swarm.members()} == {Role.MANAGER, Role.WORKER}


def test_a_demotion_must_leave_a_quorum_of_the_remaining_managers() -> None:
    h = Harness()
    h.cluster(3, 0)
    h.swarm.crash("i-m3")
    with pytest.raises(DemotionWouldLoseQuorum, match="quorum"):
        h.swarm.demote(h.nid("i-m2"))  # N=2 left, only i-m1 up
    h.swarm.demote(h.nid("i-m3"))  # the dead one may go: N=2, both up
    assert h.swarm.has_leader()
    assert by_instance(h)["i-m3"].role is Role.WORKER


def test_demoting_the_leader_hands_leadership_over() -> None:
    h = Harness()
    h.cluster(3, 0)
    h.swarm.demote(h.nid("i-m1"))
    assert h.swarm.leader() in {"i-m2", "i-m3"}
    assert by_instance(h)["i-m1"].role is Role.WORKER


def test_promotion_adds_a_voter() -> None:
    h = Harness()
    h.cluster(1, 2)
    h.swarm.promote(h.nid("i-w1"))
    h.swarm.promote(h.nid("i-w2"))
    h.swarm.promote(h.nid("i-w2"))  # already a manager: nothing to do
    assert [m.role for m in h.swarm.members()] == [Role.MANAGER] * 3
    h.swarm.crash("i-m1")
    assert h.swarm.has_leader()
    h.swarm.crash("i-w1")
    assert not h.swarm.has_leader()


def test_a_node_promoted_out_of_reach_joins_raft_only_when_it_comes_back() -> None:
    h = Harness()
    h.cluster(1, 1)
    h.swarm.crash("i-w1")
    h.swarm.promote(h.nid("i-w1"))
    assert h.swarm.has_leader()  # N is still 1
    assert h.row("i-w1")["voter"] is False
    assert by_instance(h)["i-w1"].role is Role.MANAGER
    assert not by_instance(h)["i-w1"].reachable
    h.swarm.restart("i-w1")
    assert h.row("i-w1")["voter"] is True
    h.swarm.crash("i-w1")
    assert not h.swarm.has_leader()  # N=2 now


def test_a_worker_leaves_without_a_leader_and_shows_down_after_the_delay() -> None:
    h = Harness()
    h.cluster(3, 2)
    h.swarm.crash("i-m2")
    h.swarm.crash("i-m3")
    h.swarm.leave("i-w1")  # local to the node: works without quorum
    assert not h.swarm.in_swarm("i-w1")
    h.swarm.restart("i-m2")
    h.swarm.leave("i-w2")
    assert by_instance(h)["i-w2"].ready
    h.clock.advance(10)
    members = by_instance(h)
    assert not members["i-w1"].ready and not members["i-w2"].ready


def test_leave_outside_a_swarm_is_a_no_op_and_a_dead_node_is_unreachable() -> None:
    h = Harness()
    h.cluster(1, 1)
    h.swarm.leave("i-never-joined")
    h.swarm.crash("i-w1")
    with pytest.raises(Unreachable):
        h.swarm.leave("i-w1")


def test_a_node_that_left_rejoins_as_a_new_node() -> None:
    h = Harness()
    h.cluster(1, 1)
    old = h.nid("i-w1")
    h.swarm.leave("i-w1")
    new = h.add("i-w1", Role.WORKER)
    assert new != old
    h.clock.advance(10)
    ready = {m.node_id: m.ready for m in h.swarm.members()}
    assert ready == {h.nid("i-m1"): True, old: False, new: True}
    assert h.swarm.instance_of(old) == h.swarm.instance_of(new) == "i-w1"


def test_a_removed_node_that_comes_back_is_out_of_the_swarm() -> None:
    h = Harness()
    h.cluster(1, 1)
    h.swarm.crash("i-w1")
    h.clock.advance(10)
    h.swarm.remove(h.nid("i-w1"))
    h.swarm.restart("i-w1")
    assert not h.swarm.in_swarm("i-w1")
    assert len(h.swarm.members()) == 1
    h.add("i-w1", Role.WORKER)
    assert len(h.swarm.members()) == 2


def test_label_and_drain() -> None:
    h = Harness()
    h.cluster(1, 1)
    nid = h.nid("i-w1")
    h.swarm.label(nid, {"az": "us-east-1a"})
    h.swarm.label(nid, {"instance-id": "i-w1", "asg": "workers"})
    h.swarm.drain(nid)
    m = by_instance(h)["i-w1"]
    assert m.labels == {"az": "us-east-1a", "instance-id": "i-w1", "asg": "workers"}
    assert m.instance_id == "i-w1"
    assert not m.available
    assert by_instance(h)["i-m1"].instance_id is None  # not labelled yet
    with pytest.raises(NodeNotFound):
        h.swarm.label("0" * 25, {"az": "x"})
    for call in (h.swarm.drain, h.swarm.promote, h.swarm.demote):
        with pytest.raises(NodeNotFound):
            call("0" * 25)


# --- token rotation -------------------------------------------------------------------------------


def test_rotation_refuses_the_old_token_at_once_and_stores_the_new_as_pending() -> None:
    h = Harness()
    h.cluster(1, 0)
    old_worker = h.world.current[Role.WORKER].get_secret_value()
    manager = h.world.current[Role.MANAGER].get_secret_value()
    h.swarm.rotate_token(Role.WORKER, "v2")
    new_worker = h.world.pending[(Role.WORKER, "v2")].get_secret_value()
    assert re.match(TOKEN_RE, new_worker)
    assert new_worker != old_worker
    assert new_worker.split("-")[2] == old_worker.split("-")[2]  # same cluster CA
    assert h.swarm.valid_token(old_worker) is None
    assert h.swarm.valid_token(new_worker) is Role.WORKER
    assert h.swarm.valid_token(manager) is Role.MANAGER  # the other role is untouched
    assert h.world.stores[-1] == (Role.WORKER, "v2")
    h.offer("i-w1", Role.WORKER, token=old_worker)
    with pytest.raises(InvalidJoinToken):
        h.swarm.join("i-w1", Role.WORKER)
    h.offer("i-w1", Role.WORKER, token=new_worker)
    h.swarm.join("i-w1", Role.WORKER)


def test_rotation_does_not_affect_existing_members() -> None:
    h = Harness()
    h.cluster(3, 2)
    h.swarm.rotate_token(Role.MANAGER, "v2")
    h.swarm.rotate_token(Role.WORKER, "v2")
    assert len(h.swarm.members()) == 5
    assert all(m.ready for m in h.swarm.members())


def test_token_works_compares_the_vaults_pending_version_with_the_swarm() -> None:
    h = Harness()
    h.cluster(1, 0)
    assert not h.swarm.token_works(Role.WORKER, "v2")  # nothing pending
    h.swarm.rotate_token(Role.WORKER, "v2")
    assert h.swarm.token_works(Role.WORKER, "v2")
    assert not h.swarm.token_works(Role.MANAGER, "v2")
    h.swarm.rotate_token(Role.WORKER, "v3")
    assert not h.swarm.token_works(Role.WORKER, "v2")  # superseded
    assert h.swarm.token_works(Role.WORKER, "v3")


def test_a_retried_rotation_step_does_not_rotate_twice() -> None:
    h = Harness()
    h.cluster(1, 0)
    h.swarm.rotate_token(Role.WORKER, "v2")
    token = h.world.pending[(Role.WORKER, "v2")].get_secret_value()
    stores = len(h.world.stores)
    h.swarm.rotate_token(Role.WORKER, "v2")
    assert len(h.world.stores) == stores
    assert h.swarm.valid_token(token) is Role.WORKER


def test_without_read_pending_token_works_checks_what_the_swarm_stored() -> None:
    h = Harness(with_read_pending=False)
    h.cluster(1, 0)
    assert not h.swarm.token_works(Role.WORKER, "v2")
    h.swarm.rotate_token(Role.WORKER, "v2")
    assert h.swarm.token_works(Role.WORKER, "v2")
    h.swarm.rotate_token(Role.WORKER, "v2")  # no vault to look at: a second rotation happens
    assert h.swarm.token_works(Role.WORKER, "v2")
    assert h.swarm.valid_token(h.world.pending[(Role.WORKER, "v2")].get_secret_value()) is Role.WORKER


# --- recovery -------------------------------------------------------------------------------------


def test_force_new_cluster_recovers_a_lost_quorum() -> None:
    h = Harness()
    h.cluster(3, 1)
    h.swarm.crash("i-m2")
    h.swarm.crash("i-m3")
    assert not h.swarm.has_leader()
    with pytest.raises(NotAManager):
        h.swarm.force_new_cluster("i-w1")
    with pytest.raises(NotAManager):
        h.swarm.force_new_cluster("i-nobody")
    h.swarm.force_new_cluster("i-m1")
    assert h.swarm.leader() == "i-m1"
    members = by_instance(h)
    assert len(members) == 4  # nobody silently vanishes
    assert members["i-w1"].ready
    h.clock.advance(10)
    members = by_instance(h)
    assert not members["i-m2"].reachable and members["i-m2"].role is Role.MANAGER
    h.swarm.restart("i-m2")
    assert not h.swarm.in_swarm("i-m2")  # its old Raft membership is gone
    for iid in ("i-m2", "i-m3"):
        h.swarm.demote(h.nid(iid))
        h.swarm.remove(h.nid(iid))
    assert [m.role for m in h.swarm.members()] == sorted([Role.MANAGER, Role.WORKER])
    h.add("i-m4", Role.MANAGER)
    h.swarm.crash("i-m4")
    assert not h.swarm.has_leader()  # N=2 again


# --- secrets never leak ---------------------------------------------------------------------------


def test_no_token_in_snapshot_repr_members_or_errors() -> None:
    h = Harness()
    h.cluster(3, 1)
    h.swarm.rotate_token(Role.WORKER, "v2")
    texts = [repr(h.swarm), str(h.swarm.snapshot()), repr(h.swarm.members())]
    bad_token = "SWMTKN-1-" + "z" * 50 + "-" + "z" * 25
    h.offer("i-bad", Role.WORKER, token=bad_token)
    h.offer("i-old", Role.WORKER, token=next(iter(h.world.all_tokens())))
    errors: list[OrchestratorError] = []
    for call in (
        lambda: h.swarm.join("i-bad", Role.WORKER),
        lambda: h.swarm.join("i-old", Role.MANAGER),
        lambda: h.swarm.join("i-w1", Role.WORKER),
        lambda: h.swarm.remove(h.nid("i-m1")),
        lambda: h.swarm.leave("i-m1"),
        lambda: h.init("i-m1"),
    ):
        with pytest.raises(OrchestratorError) as info:
            call()
        errors.append(info.value)
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    secrets = [*h.world.all_tokens(), bad_token]
    for text in texts:
        assert "SWMTKN" not in text
        for secret in secrets:
            assert secret.split("-")[3] not in text
    for row in h.swarm.snapshot():
        assert set(row) == {
            "node_id",
            "instance_id",
            "role",
            "status",
            "availability",
            "manager_status",
            "voter",
            "address",
            "labels",
            "machine_up",
            "segment",
            "in_swarm",
        }


def test_snapshot_describes_the_hidden_state() -> None:
    h = Harness()
    h.cluster(3, 1)
    h.swarm.partition(["i-w1"])
    h.swarm.crash("i-m3")
    h.clock.advance(10)
    rows = {r["instance_id"]: r for r in h.swarm.snapshot()}
    assert rows["i-m1"]["manager_status"] == "leader"
    assert rows["i-m2"]["manager_status"] == "reachable"
    assert rows["i-m3"]["manager_status"] == "unreachable"
    assert rows["i-m3"]["machine_up"] is False
    assert rows["i-w1"]["manager_status"] is None
    assert rows["i-w1"]["segment"] != 0
    assert rows["i-w1"]["status"] == "down"
    assert rows["i-w1"]["in_swarm"] is True
    assert h.swarm.is_up("i-w1") and not h.swarm.is_up("i-m3")
    assert "leader=i-m1" in repr(h.swarm)


def test_concurrent_callers_see_each_call_whole() -> None:
    """One request at a time, as a real manager (module docstring, Concurrency): handler environments on
    threads sharing one SimSwarm (scripts/bench_pool.py) join and read at once. Before the lock, 26 of
    1,000 pooled launches failed with 'dictionary changed size during iteration' inside join. The switch
    interval is made tiny so that threads interleave inside the calls (without the lock this fails)."""
    import sys
    import threading

    h = Harness()
    h.cluster(managers=3)
    workers = [f"i-w{k}" for k in range(400)]
    for iid in workers:  # tickets are written first, as the launch handler does before the join
        h.offer(iid, Role.WORKER)
    errors: list[BaseException] = []
    done = threading.Event()

    def joiner(ids: list[str]) -> None:
        try:
            for iid in ids:
                h.swarm.join(iid, Role.WORKER)
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            while not done.is_set():
                h.swarm.members()
                h.swarm.snapshot()
        except BaseException as exc:
            errors.append(exc)

    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=joiner, args=(workers[k::8],)) for k in range(8)]
        readers = [threading.Thread(target=reader) for _ in range(2)]
        for t in [*threads, *readers]:
            t.start()
        for t in threads:
            t.join()
        done.set()
        for t in readers:
            t.join()
    finally:
        sys.setswitchinterval(saved)
    assert errors == []
    joined = {h.swarm.instance_of(m.node_id) for m in h.swarm.members() if m.role is Role.WORKER}
    assert joined == set(workers)
