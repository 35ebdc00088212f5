"""Scale-in verdicts: who may go, and why the others may not."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.domain.brute_force import best_tolerance, tolerated

from autojoin.domain.model import ClusterView, Node, Role
from autojoin.domain.verdict import ScaleInVerdict, scale_in_verdict

PROPS = settings(max_examples=200, deadline=None)
ZONES = ("a", "b", "c", "d")


def manager(iid: str, az: str, healthy: bool = True) -> Node:
    return Node(instance_id=iid, role=Role.MANAGER, az=az, healthy=healthy)


def worker(iid: str, az: str) -> Node:
    return Node(instance_id=iid, role=Role.WORKER, az=az)


def view(*nodes: Node, zones: tuple[str, ...] = ("a", "b", "c")) -> ClusterView:
    return ClusterView(cluster="demo", nodes=nodes, zones=zones)


FIVE = view(
    manager("m-a1", "a"),
    manager("m-a2", "a"),
    manager("m-b1", "b"),
    manager("m-b2", "b"),
    manager("m-c1", "c"),
    worker("w-a", "a"),
    worker("w-b", "b"),
)


# --- examples -------------------------------------------------------------------------------------


def test_workers_and_unknown_instances_may_always_go() -> None:
    v = scale_in_verdict(FIVE, ["w-a", "i-gone", "w-b"])
    assert v == ScaleInVerdict(
        allowed=("w-a", "i-gone", "w-b"), refused={}, margin_after=2, unknown=("i-gone",)
    )


def test_2_2_1_may_lose_one_manager_then_keeps_its_az_tolerance() -> None:
    # 5 -> 4: no 4-manager layout over 3 AZs survives an AZ loss, so any one may go;
    # 4 -> 3: only 1-1-1 survives an AZ loss, so the second must come from the other doubled AZ.
    v = scale_in_verdict(FIVE, ["m-a1", "m-a2", "m-c1", "m-b1"])
    assert v.allowed == ("m-a1", "m-b1")
    assert set(v.refused) == {"m-a2", "m-c1"}
    assert "surviving 0 AZ losses where 3 managers can survive 1" in v.refused["m-a2"]
    assert v.margin_after == 1  # 3 healthy, quorum 2


def test_unhealthy_managers_are_considered_first() -> None:
    # 2-2-1 with the manager in c down. Taking the dead one first leaves 2-2 (4 managers can't survive an
    # AZ loss anyway); a1 after it would leave 1-2 over 3 AZs where 3 managers could survive one.
    cluster = view(
        manager("a1", "a"),
        manager("a2", "a"),
        manager("b1", "b"),
        manager("b2", "b"),
        manager("c1", "c", healthy=False),
    )
    v = scale_in_verdict(cluster, ["a1", "c1"])
    assert v.allowed == ("c1",)
    assert v.refused == {
        "a1": "would leave 1-2-0 over 3 AZs, surviving 0 AZ losses where 3 managers can survive 1"
    }
    assert v.margin_after == 1


def test_quorum_rule_is_named_in_the_reason() -> None:
    cluster = view(manager("m1", "a"), manager("m2", "b"), manager("m3", "c", healthy=False))
    v = scale_in_verdict(cluster, ["m1"])
    assert v.allowed == ()
    assert v.refused == {"m1": "would leave 1 healthy of 2 managers (quorum 2)"}
    assert v.margin_after == 0  # 2 healthy of 3, quorum 2


def test_the_last_manager_never_goes() -> None:
    v = scale_in_verdict(view(manager("m1", "a"), worker("w1", "a")), ["m1", "w1"])
    assert v.allowed == ("w1",)
    assert v.refused == {"m1": "would remove the last manager"}
    assert v.margin_after == 0


def test_duplicates_are_decided_once() -> None:
    v = scale_in_verdict(FIVE, ["w-a", "w-a", "m-c1", "m-c1"])
    assert v.allowed == ("w-a", "m-c1")
    assert v.refused == {}


def test_an_empty_cluster_has_no_margin() -> None:
    v = scale_in_verdict(view(worker("w1", "a")), ["w1"])
    assert (v.allowed, v.margin_after) == (("w1",), 0)


def test_zone_floor_uses_the_best_layout_for_the_remaining_count() -> None:
    # 3-2-2 survives one AZ loss, and so does 6 as 2-2-2: b0 (first) may not go; a0 may, and then
    # c0 too (2-2-1 still survives one AZ loss).
    cluster = view(*(manager(f"{z}{i}", z) for z, n in (("a", 3), ("b", 2), ("c", 2)) for i in range(n)))
    v = scale_in_verdict(cluster, ["b0", "a0", "c0"])
    assert v.allowed == ("a0", "c0")
    assert (
        v.refused["b0"]
        == "would leave 3-1-2 over 3 AZs, surviving 0 AZ losses where 6 managers can survive 1"
    )
    assert set(v.refused) == {"b0"}
    assert v.margin_after == 2


def test_a_refusal_that_keeps_one_az_loss_says_loss_not_losses() -> None:
    # 3-2-2-2-2 survives two AZ losses, and so can 10 managers (2-2-2-2-2); b0 would leave 3-1-2-2-2,
    # which survives only one: the reason counts it in the singular. a0 may go (2-2-2-2-2).
    zones = ("a", "b", "c", "d", "e")
    counts = (("a", 3), ("b", 2), ("c", 2), ("d", 2), ("e", 2))
    cluster = view(*(manager(f"{z}{i}", z) for z, n in counts for i in range(n)), zones=zones)
    v = scale_in_verdict(cluster, ["b0", "a0"])
    assert v.allowed == ("a0",)
    assert v.refused == {
        "b0": "would leave 3-1-2-2-2 over 5 AZs, surviving 1 AZ loss where 10 managers can survive 2"
    }


# --- properties ----------------------------------------------------------------------------------


@st.composite
def clusters(draw: st.DrawFn) -> tuple[ClusterView, list[str]]:
    zones = ZONES[: draw(st.integers(1, 4))]
    nodes: list[Node] = []
    for i, az in enumerate(zones):
        for j in range(draw(st.integers(0, 3))):
            nodes.append(manager(f"m-{i}-{j}", az, healthy=draw(st.booleans())))
        for j in range(draw(st.integers(0, 1))):
            nodes.append(worker(f"w-{i}-{j}", az))
    cluster = ClusterView(cluster="prop", nodes=tuple(nodes), zones=zones)
    ids = [n.instance_id for n in nodes] + ["i-unknown-1", "i-unknown-2"]
    candidates = draw(st.lists(st.sampled_from(ids), max_size=8))
    return cluster, candidates


def problem(before: ClusterView, gone: str, floor: int) -> bool:
    """Brute force: would removing ``gone`` from ``before`` break a rule?"""
    after = before.without([gone])
    managers = after.managers()
    if not managers:
        return True
    healthy = len(after.managers(healthy_only=True))
    if 2 * healthy <= len(managers):
        return True
    layout = after.manager_layout(healthy_only=False)
    return tolerated(layout) < min(floor, best_tolerance(len(managers), list(layout)))


@PROPS
@given(clusters())
def test_verdict_never_allows_an_unsafe_removal(case: tuple[ClusterView, list[str]]) -> None:
    cluster, candidates = case
    v = scale_in_verdict(cluster, candidates)
    unique = list(dict.fromkeys(candidates))
    assert set(v.allowed) | set(v.refused) == set(unique)
    assert not set(v.allowed) & set(v.refused)
    assert list(v.allowed) == [c for c in unique if c in v.allowed]
    assert v.unknown == tuple(c for c in unique if cluster.node(c) is None)
    for c in unique:
        node = cluster.node(c)
        if node is None or node.role is Role.WORKER:
            assert c in v.allowed
    # replay the managers in the verdict's order (unhealthy first, then candidate order)
    floor = tolerated(cluster.manager_layout(healthy_only=False))
    managers = [cluster.node(c) for c in unique]
    order = sorted((n for n in managers if n is not None and n.role is Role.MANAGER), key=lambda n: n.healthy)
    state = cluster
    for node in order:
        unsafe = problem(state, node.instance_id, floor)
        if node.instance_id in v.allowed:
            assert not unsafe, node
            state = state.without([node.instance_id])
        else:
            assert unsafe, node
            assert v.refused[node.instance_id].startswith("would ")
    total = len(state.managers())
    healthy = len(state.managers(healthy_only=True))
    assert v.margin_after == (healthy - (total // 2 + 1) if total else 0)
