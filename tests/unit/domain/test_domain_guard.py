"""The quorum guard's rules: floor, order by AZ tolerance, dead voters first, workers by AZ capacity."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from autojoin.domain.guard import choose_managers, choose_workers, removal_check
from autojoin.domain.model import ClusterView, Node, Role
from autojoin.domain.quorum import quorum, zone_failures_tolerated

ZONES = ("a", "b", "c")


def view(layout: dict[str, int], *, dead: tuple[str, ...] = (), workers: int = 0) -> ClusterView:
    nodes: list[Node] = []
    for az, n in layout.items():
        for k in range(1, n + 1):
            iid = f"i-m{az}{k}"
            nodes.append(Node(instance_id=iid, role=Role.MANAGER, az=az, healthy=iid not in dead))
    for k in range(workers):
        nodes.append(Node(instance_id=f"i-w{k}", role=Role.WORKER, az=ZONES[k % 3]))
    return ClusterView(cluster="demo", nodes=tuple(nodes), zones=ZONES)


def ids(v: ClusterView) -> list[str]:
    return [n.instance_id for n in v.managers()]


def test_five_to_three_over_three_zones_ends_one_one_one() -> None:
    v = view({"a": 2, "b": 2, "c": 1})
    offered = ["i-mc1", "i-ma1", "i-ma2", "i-mb1", "i-mb2"]  # the single AZ's manager offered first
    choice = choose_managers(v, offered, 2, 3)
    assert len(choice.allowed) == 2
    assert "i-mc1" not in choice.allowed  # taking the lone AZ's manager would leave 2-2-0
    assert choice.layout_after == {"a": 1, "b": 1, "c": 1}
    assert choice.margin_after == 1


def test_the_floor_stops_at_min_managers_and_says_why() -> None:
    v = view({"a": 1, "b": 1, "c": 1})
    choice = choose_managers(v, ids(v), 2, 3)
    assert choice.allowed == ()
    assert all("below MinManagers 3" in why for why in choice.refused.values())


def test_five_to_one_stops_at_three_one_per_zone() -> None:
    v = view({"a": 2, "b": 2, "c": 1})
    choice = choose_managers(v, ids(v), 4, 3)
    assert choice.layout_after == {"a": 1, "b": 1, "c": 1}
    assert len(choice.refused) == 3


def test_a_dead_voter_goes_first_even_at_the_floor() -> None:
    v = view({"a": 1, "b": 1, "c": 2}, dead=("i-mc2",))
    assert removal_check(v, "i-mc2", 3) is None  # healthy count unchanged: always fine with a quorum
    assert removal_check(v, "i-ma1", 3) is not None
    choice = choose_managers(v, ids(v), 1, 3)
    assert choice.allowed == ("i-mc2",)


def test_no_removal_that_loses_quorum() -> None:
    v = view({"a": 2, "b": 2, "c": 1}, dead=("i-ma1", "i-ma2"))
    why = removal_check(v, "i-mb1", 1)
    assert why is not None and "quorum" in why


def test_unknown_and_demoted_offered_instances_may_go_first() -> None:
    v = view({"a": 1, "b": 1, "c": 1})
    choice = choose_managers(v, ["i-ma1", "i-new"], 1, 3)
    assert choice.allowed == ("i-new",)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)).filter(lambda c: sum(c) >= 1),
    want=st.integers(1, 6),
    floor=st.sampled_from([1, 3, 5]),
    dead=st.integers(0, 2),
)
def test_every_choice_keeps_quorum_floor_and_tolerance(
    counts: tuple[int, int, int], want: int, floor: int, dead: int
) -> None:
    layout = dict(zip(ZONES, counts, strict=True))
    v0 = view(layout)
    dead_ids = tuple(ids(v0)[:dead])
    v = view(layout, dead=dead_ids)
    before_healthy = len(v.managers(healthy_only=True))
    choice = choose_managers(v, ids(v), want, floor)
    after = v.without(choice.allowed)
    n = len(after.managers())
    healthy = len(after.managers(healthy_only=True))
    if choice.allowed:
        assert n >= 1
        assert healthy >= quorum(n)
        assert healthy >= min(floor, before_healthy)
        # what the cluster really survives now: dead voters add no tolerance
        tol_before = zone_failures_tolerated(v.without(dead_ids).manager_layout(healthy_only=False))
        tol_after = zone_failures_tolerated(after.manager_layout(healthy_only=False))
        removed_healthy = [i for i in choice.allowed if i not in dead_ids]
        if removed_healthy and tol_after < tol_before:
            # only where no layout of that many managers could do better
            from autojoin.domain.verdict import best_zone_tolerance

            assert tol_after >= min(tol_before, best_zone_tolerance(n, list(ZONES)))
    assert len(choice.allowed) <= want


def test_workers_follow_zone_capacity_and_drained_nodes_go_first() -> None:
    known = {
        "i-w3": Node(instance_id="i-w3", role=Role.WORKER, az="a", available=False),
        "i-w9": Node(instance_id="i-w9", role=Role.MANAGER, az="b"),  # promoted: never picked here
    }
    offered = [("i-w1", "a"), ("i-w2", "a"), ("i-w3", "a"), ("i-w9", "b"), ("i-w4", "b"), ("i-w5", "c")]
    assert choose_workers(known, offered, {"a": 2, "b": 1}) == ["i-w3", "i-w1", "i-w4"]
    assert choose_workers({}, offered, None) == [iid for iid, _ in offered]


def test_a_summarised_view_keeps_managers_and_notable_workers() -> None:
    v = view({"a": 1, "b": 1, "c": 1}, workers=6)
    drained = v.nodes[3].model_copy(update={"available": False})
    v = v.with_node(drained)
    s = v.summarised()
    assert not s.workers_listed
    assert s.worker_counts == {"a": 2, "b": 2, "c": 2}
    assert {n.instance_id for n in s.nodes} == {*ids(v), drained.instance_id}


def test_summarising_a_summarised_view_keeps_its_counts() -> None:
    # the listed workers of a summary are only the notable ones: its counts come from worker_counts
    s = view({"a": 1, "b": 1, "c": 1}, workers=6).summarised()
    again = s.summarised()
    assert again.worker_counts == {"a": 2, "b": 2, "c": 2}
    assert not again.workers_listed


# --- boundaries found by `make mutate FILES=domain/guard.py` (each assertion fails with its mutant) -------


def test_a_dead_voter_may_go_when_the_healthy_ones_are_exactly_a_quorum_of_what_is_left() -> None:
    v = view({"a": 1, "b": 1, "c": 1}, dead=("i-mc1",))
    # 2 healthy of the 2 managers left: quorum(2) == 2 is met exactly (`<=` instead of `<` would refuse)
    assert removal_check(v, "i-mc1", 1) is None


def test_a_dead_voter_that_would_leave_too_few_healthy_ones_is_refused_with_the_numbers() -> None:
    v = view({"a": 2, "b": 2, "c": 1}, dead=("i-ma1", "i-mb1", "i-mc1"))
    assert removal_check(v, "i-mc1", 1) == "would leave 2 healthy of 4 managers (quorum 3)"


def test_the_last_manager_is_never_removed_even_dead() -> None:
    v = view({"a": 1, "b": 0, "c": 0}, dead=("i-ma1",))
    assert removal_check(v, "i-ma1", 1) == "would remove the last manager"


def test_an_offered_worker_is_not_judged_as_a_manager() -> None:
    v = view({"a": 1, "b": 1, "c": 1}, workers=1)
    # the worker's removal touches no manager rule, even at the floor
    choice = choose_managers(v, ["i-w0"], 1, 3)
    assert choice.allowed == ("i-w0",) and choice.refused == {}


def test_managers_beyond_what_was_asked_are_refused_as_not_needed() -> None:
    v = view({"a": 2, "b": 2, "c": 1})
    choice = choose_managers(v, ["i-ma1", "i-mb1"], 1, 3)
    assert len(choice.allowed) == 1
    (other,) = {"i-ma1", "i-mb1"} - set(choice.allowed)
    assert choice.refused == {other: "not needed: 1 instance(s) asked for"}


def test_the_layout_after_counts_dead_voters_where_they_are() -> None:
    v = view({"a": 2, "b": 2, "c": 1}, dead=("i-mb2",))
    choice = choose_managers(v, ["i-ma1"], 1, 3)
    assert choice.allowed == ("i-ma1",)
    assert choice.layout_after == {"a": 1, "b": 2, "c": 1}  # i-mb2 is still a voter in b


def test_managers_left_over_after_the_asked_number_say_why_they_could_not_go_next() -> None:
    v = view({"a": 2, "b": 2, "c": 1})
    choice = choose_managers(v, ids(v), 2, 3)
    assert choice.layout_after == {"a": 1, "b": 1, "c": 1}
    left = set(ids(v)) - set(choice.allowed)
    assert set(choice.refused) == left
    # at the floor now: each one left over is refused by the rules, not merely "not needed"
    assert all("below MinManagers 3" in choice.refused[i] for i in left), choice.refused


def test_an_az_whose_offered_workers_are_all_drained_gives_them_all() -> None:
    drained = Node(instance_id="i-w1", role=Role.WORKER, az="a", available=False)
    assert choose_workers({"i-w1": drained}, [("i-w1", "a")], {"a": 1}) == ["i-w1"]


def test_the_tolerance_floor_counts_the_dead_voters_too() -> None:
    # 3-2-2 (both in b dead) survives one AZ loss counting every voter; c1 would leave 3-2-1, which
    # survives none where 6 managers can survive one. (The healthy-only layout, 3-0-2, survives none
    # already: that floor would let c1 go.)
    v = view({"a": 3, "b": 2, "c": 2}, dead=("i-mb1", "i-mb2"))
    assert removal_check(v, "i-mc1", 3) == (
        "would leave 3-2-1 over 3 AZs, surviving 0 AZ losses where 6 managers can survive 1"
    )


def test_the_layout_left_behind_counts_the_dead_voters_too() -> None:
    # b has 1 manager, c has 3 (c1 dead). Taking a healthy one from c leaves 0-1-2 counting every voter;
    # taking b's would leave all three in c (the healthy-only layout 0-0-2 would look as good as 0-1-1)
    v = view({"a": 0, "b": 1, "c": 3}, dead=("i-mc1",))
    choice = choose_managers(v, ["i-mb1", "i-mc2", "i-mc3"], 1, 1)
    assert choice.allowed == ("i-mc2",)
