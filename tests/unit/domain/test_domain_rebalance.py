"""The reconciler's pure decisions: zone hysteresis, tolerance now, and the next rebalance step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from autojoin.domain.model import ClusterView, InstanceInfo, Node, Role
from autojoin.domain.quorum import zone_failures_tolerated
from autojoin.domain.rebalance import (
    ManagerGroup,
    StepKind,
    ZoneWatch,
    impaired_zones,
    manager_target,
    next_step,
    quorum_margin,
    unsettled,
    watch_zones,
    zone_failures_now,
    zone_signals,
)

A, B, C = "us-east-1a", "us-east-1b", "us-east-1c"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def managers(layout: dict[str, int], *, down: dict[str, int] | None = None) -> ClusterView:
    nodes = []
    k = 0
    for az, n in layout.items():
        for j in range(n):
            k += 1
            dead = j < (down or {}).get(az, 0)
            nodes.append(
                Node(instance_id=f"i-{k:03d}", role=Role.MANAGER, az=az, healthy=not dead, leader=k == 1)
            )
    return ClusterView(cluster="demo", nodes=tuple(nodes), zones=tuple(sorted(layout)))


def group_of(view: ClusterView, zones: tuple[str, ...], desired: int | None = None) -> ManagerGroup:
    insts = tuple(
        InstanceInfo(instance_id=n.instance_id, az=n.az, group="mgr", lifecycle_state="InService")
        for n in view.managers()
    )
    return ManagerGroup("mgr", zones, desired if desired is not None else len(insts), 10, insts)


# --- hysteresis ------------------------------------------------------------------------------------


def test_an_az_is_impaired_at_once_and_trusted_again_only_after_looking_good_long_enough() -> None:
    w = watch_zones({}, {A: True, B: False}, T0, 900)
    assert impaired_zones(w) == (A,)
    w = watch_zones(w, {A: False}, T0 + timedelta(seconds=300), 900)
    assert impaired_zones(w) == (A,), "good for 0 s so far"
    w = watch_zones(w, {A: False}, T0 + timedelta(seconds=900), 900)
    assert impaired_zones(w) == (A,), "good for 600 s: not yet"
    w = watch_zones(w, {A: False}, T0 + timedelta(seconds=1200), 900)
    assert impaired_zones(w) == ()
    assert w[A].changed_at == T0 + timedelta(seconds=1200)


def test_a_bad_look_during_recovery_restarts_the_clock() -> None:
    w = watch_zones({}, {A: True}, T0, 900)
    w = watch_zones(w, {A: False}, T0 + timedelta(seconds=60), 900)
    w = watch_zones(w, {A: True}, T0 + timedelta(seconds=600), 900)
    w = watch_zones(w, {A: False}, T0 + timedelta(seconds=1000), 900)
    w = watch_zones(w, {A: False}, T0 + timedelta(seconds=1500), 900)
    assert impaired_zones(w) == (A,), "good only since 1000 s"
    w = watch_zones(w, {A: False}, T0 + timedelta(seconds=1900), 900)
    assert impaired_zones(w) == ()


def test_no_signal_keeps_the_state() -> None:
    w = watch_zones({}, {A: True}, T0, 900)
    w = watch_zones(w, {A: None}, T0 + timedelta(hours=5), 900)
    assert impaired_zones(w) == (A,)


def test_settling_blocks_steps_while_impaired_and_for_a_while_after() -> None:
    w = {A: ZoneWatch(impaired=True, changed_at=T0)}
    assert unsettled(w, [A, B], T0, 900) == f"{A} is impaired"
    w = {A: ZoneWatch(impaired=False, changed_at=T0)}
    assert unsettled(w, [A, B], T0 + timedelta(seconds=100), 900) is not None
    assert unsettled(w, [A, B], T0 + timedelta(seconds=900), 900) is None


def test_zone_signals() -> None:
    view = managers({A: 2, B: 1}, down={A: 2})
    assert zone_signals(view, [A, B, C]) == {A: True, B: False, C: None}


# --- tolerance now -----------------------------------------------------------------------------------


def test_down_voters_count_in_n() -> None:
    # 2-2-1 with the two of A down: 3 healthy of 5 voters. Margin 0, no AZ loss survivable.
    view = managers({A: 2, B: 2, C: 1}, down={A: 2})
    assert quorum_margin(view) == 0
    assert zone_failures_now(view) == 0
    # the seed's "today": 7 voters, 5 healthy (2-2-1) -> margin 1, survives no AZ loss
    seven = managers({A: 4, B: 2, C: 1}, down={A: 2})
    assert quorum_margin(seven) == 1
    assert zone_failures_now(seven) == 0
    assert zone_failures_now(managers({A: 2, B: 2, C: 1})) == 1


@given(st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=5))
@settings(max_examples=60, deadline=None)
def test_all_healthy_tolerance_now_is_the_layout_tolerance(counts: list[int]) -> None:
    layout = {f"z{i}": c for i, c in enumerate(counts)}
    view = managers(layout).model_copy(update={"zones": tuple(sorted(layout))})
    assert zone_failures_now(view) == zone_failures_tolerated(layout)


# --- next step -------------------------------------------------------------------------------------


def test_3_2_with_a_third_az_surges_into_it() -> None:
    view = managers({A: 3, B: 2})
    step = next_step(view, group_of(view, (A, B, C)), surge_from=None)
    assert step.kind is StepKind.LAUNCH and step.az == C
    assert step.target == 5 and step.goal == {A: 2, B: 2, C: 1}


def test_after_the_surge_the_over_full_az_gives_one_up() -> None:
    view = managers({A: 3, B: 2, C: 1})
    group = group_of(view, (A, B, C), desired=6)
    assert manager_target(group, 5) == 5
    step = next_step(view, group, surge_from=5)
    assert step.kind is StepKind.RETIRE and step.az == A
    assert step.instance_id != "i-001", "never the leader while another manager of the AZ will do"


def test_without_our_surge_six_is_the_target() -> None:
    view = managers({A: 3, B: 2, C: 1})
    step = next_step(view, group_of(view, (A, B, C), desired=6), surge_from=None)
    assert step.target == 6 and step.goal == {A: 2, B: 2, C: 2}
    assert step.kind is StepKind.LAUNCH and step.az == C


def test_more_managers_than_desired_is_a_scale_in_not_a_rebalance() -> None:
    # e.g. three terminated with decrement at once, one of them retained: 3 managers, desired 2
    view = managers({A: 1, B: 1, C: 1})
    group = ManagerGroup("mgr", (A, B, C), 2, 10, group_of(view, (A, B, C)).instances[:2])
    step = next_step(view, group, surge_from=None)
    assert step.kind is StepKind.WAIT and "guard" in step.reason


def test_balanced_layout_needs_nothing() -> None:
    view = managers({A: 2, B: 2, C: 1})
    assert next_step(view, group_of(view, (A, B, C)), surge_from=None).kind is StepKind.NONE


def test_waits_while_busy_unhealthy_unsettled_or_leaderless() -> None:
    view = managers({A: 3, B: 2})
    g = group_of(view, (A, B, C))
    assert next_step(view, g, surge_from=None, has_leader=False).kind is StepKind.WAIT
    assert next_step(view, g, surge_from=None, unsettled_reason="x").kind is StepKind.WAIT
    busy = ManagerGroup(
        "mgr",
        (A, B, C),
        6,
        10,
        (*g.instances, InstanceInfo(instance_id="i-new", az=C, group="mgr", lifecycle_state="Pending:Wait")),
    )
    step = next_step(view, busy, surge_from=5)
    assert step.kind is StepKind.WAIT and "busy" in step.reason
    sick = managers({A: 3, B: 2}, down={B: 1})
    assert next_step(sick, group_of(sick, (A, B, C)), surge_from=None).kind is StepKind.WAIT


def test_a_tie_between_launch_zones_is_fine_when_both_lead_to_a_best_layout() -> None:
    # 3-1-1 wants 2-2-1 or 2-1-2: B and C tie for the fewest instances, and either will do
    view = managers({A: 3, B: 1, C: 1})
    step = next_step(view, group_of(view, (A, B, C)), surge_from=None)
    assert step.kind is StepKind.LAUNCH and step.az == f"{B} or {C}"


def test_no_launch_when_the_group_would_launch_elsewhere() -> None:
    # 1-3-1 over A, B, C plus an empty D the group spans: 5 over four AZs is best as 2-1-1-1; the group
    # would launch into D (the emptiest), and D is an AZ a nearest best layout adds to: launch.
    # With D impaired, the best is 2-1-... over three: the group would still launch into D: wait.
    D = "us-east-1d"
    view = managers({A: 1, B: 3, C: 1})
    group = group_of(view, (A, B, C, D))
    assert next_step(view, group, surge_from=None).kind is StepKind.LAUNCH
    step = next_step(view, group, surge_from=None, impaired=[D])
    assert step.kind is StepKind.WAIT and "would launch into us-east-1d" in step.reason


def test_impaired_az_gets_no_manager() -> None:
    view = managers({A: 3, B: 2})
    step = next_step(view, group_of(view, (A, B, C)), surge_from=None, impaired=[C])
    assert step.kind is StepKind.NONE, "3-2 is the best 5 can do over A and B"


def test_a_dropped_az_is_emptied() -> None:
    # the group no longer spans C: surge into A or B (they tie; either gives a best 3-2), then retire C's
    view = managers({A: 2, B: 2, C: 1})
    group = ManagerGroup("mgr", (A, B), 5, 10, group_of(view, (A, B, C)).instances)
    step = next_step(view, group, surge_from=None)
    assert step.kind is StepKind.LAUNCH and step.az == f"{A} or {B}"
    grown = view.with_node(Node(instance_id="i-new", role=Role.MANAGER, az=B))
    group = ManagerGroup("mgr", (A, B), 6, 10, group_of(grown, (A, B, C)).instances)
    step = next_step(grown, group, surge_from=5)
    assert step.kind is StepKind.RETIRE and step.az == C
    assert step.goal == {A: 2, B: 3, C: 0}


def test_every_step_from_3_2_to_2_2_1_keeps_the_start_tolerance() -> None:
    view = managers({A: 3, B: 2})
    start = zone_failures_tolerated({A: 3, B: 2, C: 0})
    group = group_of(view, (A, B, C))
    surge: int | None = None
    layouts: list[dict[str, int]] = []
    for _ in range(6):
        step = next_step(view, group, surge_from=surge)
        if step.kind is StepKind.NONE:
            break
        layout = view.model_copy(update={"zones": (A, B, C)}).manager_layout()
        if step.kind is StepKind.LAUNCH:
            assert step.az is not None
            surge = step.target
            node = Node(instance_id=f"i-n{len(layouts)}", role=Role.MANAGER, az=step.az)
            view = view.with_node(node)
            group = group_of(view, (A, B, C), desired=group.desired + 1)
        else:
            assert step.kind is StepKind.RETIRE and step.instance_id
            view = view.without([step.instance_id])
            group = group_of(view, (A, B, C), desired=group.desired - 1)
        layout = view.model_copy(update={"zones": (A, B, C)}).manager_layout()
        layouts.append(layout)
        assert zone_failures_tolerated(layout) >= start
    assert layouts[-1] == {A: 2, B: 2, C: 1}
    assert len(layouts) == 2


def test_no_rebalance_plans_below_the_guard_s_floor() -> None:
    # 1-1-1 in the swarm, the group owns two of them (the third was retained) and wants 2
    view = managers({A: 1, B: 1, C: 1})
    owned = tuple(
        InstanceInfo(instance_id=n.instance_id, az=n.az, group="mgr", lifecycle_state="InService")
        for n in view.managers()
        if n.az != C
    )
    group = ManagerGroup("mgr", (A, B, C), 2, 10, owned)
    # no floor: still no retirement toward 2 — more managers than the group wants, without the reconciler's
    # own surge, is a scale-in, and scale-in is the guard's (its termination policy and protection release)
    unfloored = next_step(view, group, surge_from=None)
    assert unfloored.kind is StepKind.WAIT and unfloored.target == 2
    held = next_step(view, group, surge_from=None, floor=3)
    assert held.kind is StepKind.NONE and held.target == 3
