"""The reconciler's next step, asserted whole: kind, the reason an operator reads, the AZ and instance, the
target, the goal and the rest of the plan — for layouts chosen so that each rule of next_step decides.

Also the smaller decisions around it (group capacity, zone watches, settling text, tolerance now), asserted
as whole values. The layouts use the notation of the step descriptions: 3-2-1 is 3 managers in
us-east-1a, 2 in us-east-1b, 1 in us-east-1c.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import pytest

from autojoin.domain.model import ClusterView, InstanceInfo, Node, Role
from autojoin.domain.placement import optimal_layout
from autojoin.domain.rebalance import (
    ManagerGroup,
    RebalanceStep,
    StepKind,
    ZoneWatch,
    best_tolerance,
    expected_labels,
    nearest_goals,
    next_step,
    quorum_margin,
    unsettled,
    wants_protection,
    watch_zones,
    zone_failures_now,
)
from autojoin.domain.transition import plan_transition
from autojoin.errors import PlacementError

A, B, C, D = "us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def cluster(layout: Mapping[str, int], *, leader: int = 1, down: Iterable[int] = ()) -> ClusterView:
    """Managers i-001, i-002, ... filled AZ by AZ in the order given; ``leader``/``down`` by number."""
    sick = set(down)
    nodes = []
    k = 0
    for az, n in layout.items():
        for _ in range(n):
            k += 1
            nodes.append(
                Node(
                    instance_id=f"i-{k:03d}",
                    role=Role.MANAGER,
                    az=az,
                    healthy=k not in sick,
                    leader=k == leader,
                )
            )
    return ClusterView(cluster="demo", nodes=tuple(nodes), zones=tuple(sorted(layout)))


def inst(instance_id: str, az: str, state: str | None = "InService", *, ec2: str = "running") -> InstanceInfo:
    return InstanceInfo(instance_id=instance_id, az=az, group="mgr", lifecycle_state=state, state=ec2)


def group(
    view: ClusterView,
    zones: tuple[str, ...],
    *,
    desired: int | None = None,
    owned: Iterable[str] | None = None,
    states: Mapping[str, str] | None = None,
    extra: Iterable[InstanceInfo] = (),
) -> ManagerGroup:
    """The group "mgr" owning every manager of ``view`` (or only ``owned``), InService unless ``states`` says
    otherwise, plus ``extra`` instances; desired defaults to the number of instances."""
    keep = None if owned is None else set(owned)
    insts = tuple(
        inst(n.instance_id, n.az, (states or {}).get(n.instance_id, "InService"))
        for n in view.managers()
        if keep is None or n.instance_id in keep
    ) + tuple(extra)
    return ManagerGroup("mgr", zones, len(insts) if desired is None else desired, 10, insts)


# --- next_step: the waits before any planning --------------------------------------------------------------


def test_no_leader_waits_with_the_target_it_would_keep() -> None:
    view = cluster({A: 3, B: 2})
    step = next_step(view, group(view, (A, B, C)), surge_from=None, has_leader=False)
    assert step == RebalanceStep(StepKind.WAIT, "the cluster has no leader", target=5)


def test_a_group_without_zones_asks_for_nothing() -> None:
    view = cluster({A: 3})
    step = next_step(view, group(view, ()), surge_from=None)
    assert step == RebalanceStep(StepKind.NONE, "the manager group asks for no managers", target=3)


def test_a_group_asking_for_no_managers_over_its_zones_needs_nothing() -> None:
    empty = ClusterView(cluster="demo", zones=(A, B, C))
    step = next_step(empty, ManagerGroup("mgr", (A, B, C), 0, 10), surge_from=None)
    assert step == RebalanceStep(StepKind.NONE, "the manager group asks for no managers", target=0)


def test_one_manager_is_a_target_like_any_other() -> None:
    view = cluster({A: 1})
    step = next_step(view, group(view, (A, B, C)), surge_from=None)
    assert step == RebalanceStep(StepKind.NONE, "at the best layout 1-0-0", target=1, goal={A: 1, B: 0, C: 0})


def test_the_unsettled_reason_is_passed_on() -> None:
    view = cluster({A: 3, B: 2})
    step = next_step(view, group(view, (A, B, C)), surge_from=None, unsettled_reason=f"{C} is impaired")
    assert step == RebalanceStep(StepKind.WAIT, f"{C} is impaired", target=5)


def test_busy_lists_every_instance_in_flight_in_the_group_s_order() -> None:
    view = cluster({A: 3, B: 2})
    busy = group(
        view, (A, B, C), desired=6, states={"i-002": "Terminating:Wait"}, extra=[inst("i-new", C, "Pending")]
    )
    step = next_step(view, busy, surge_from=5)
    assert step == RebalanceStep(
        StepKind.WAIT, "the manager group is busy (i-002 Terminating:Wait, i-new Pending)", target=5
    )


def test_capacity_that_differs_from_desired_waits() -> None:
    # a terminated instance the group still lists and one in Standby count for nothing
    view = cluster({A: 3, B: 2})
    g = group(
        view, (A, B, C), desired=6, extra=[inst("i-old", A, ec2="terminated"), inst("i-sb", C, "Standby")]
    )
    step = next_step(view, g, surge_from=None)
    assert step == RebalanceStep(StepKind.WAIT, "the manager group has 5 instances for a desired 6", target=6)


def test_unhealthy_managers_are_named_in_order() -> None:
    view = cluster({A: 3, B: 2}, down=[4, 2])
    step = next_step(view, group(view, (A, B, C)), surge_from=None)
    assert step == RebalanceStep(StepKind.WAIT, "unhealthy managers first (i-002, i-004)", target=5)


def test_no_layout_when_every_az_is_impaired() -> None:
    view = cluster({A: 3, B: 2})
    with pytest.raises(PlacementError) as placement:
        optimal_layout(5, (A, B, C), impaired=[A, B, C])
    step = next_step(view, group(view, (A, B, C)), surge_from=None, impaired=[A, B, C])
    assert step == RebalanceStep(StepKind.WAIT, f"no layout for 5 managers: {placement.value}", target=5)


# --- next_step: at the goal, or no safe plan ------------------------------------------------------------


def test_at_the_best_layout_names_it_and_keeps_it_as_the_goal() -> None:
    view = cluster({A: 2, B: 2, C: 1})
    step = next_step(view, group(view, (A, B, C)), surge_from=None)
    assert step == RebalanceStep(StepKind.NONE, "at the best layout 2-2-1", target=5, goal={A: 2, B: 2, C: 1})


def test_no_safe_order_waits_with_the_planner_s_reason() -> None:
    # 1-1-1 joined, 5 instances in service: on the way to 2-2-1 every order passes through 4 managers,
    # and no 4 over three AZs survives the AZ loss both ends survive
    view = cluster({A: 1, B: 1, C: 1})
    g = group(view, (A, B, C), extra=[inst("i-new1", A), inst("i-new2", B)])
    goal = {A: 2, B: 2, C: 1}
    with pytest.raises(PlacementError) as planner:
        plan_transition({A: 1, B: 1, C: 1}, goal)
    step = next_step(view, g, surge_from=None)
    assert step == RebalanceStep(StepKind.WAIT, str(planner.value), target=5, goal=goal)


def test_fewer_joined_than_the_target_waits_with_the_plan() -> None:
    view = cluster({A: 2, B: 2})
    step = next_step(view, group(view, (A, B, C), extra=[inst("i-new", C)]), surge_from=None)
    assert step == RebalanceStep(
        StepKind.WAIT,
        "4 managers joined for a target of 5",
        target=5,
        goal={A: 2, B: 2, C: 1},
        plan=("add us-east-1c -> 2-2-1 (tolerates 1)",),
    )


def test_more_managers_than_desired_without_our_surge_is_the_guard_s_scale_in() -> None:
    view = cluster({A: 1, B: 1, C: 1})
    step = next_step(view, group(view, (A, B, C), owned=["i-001", "i-002"]), surge_from=None)
    assert step == RebalanceStep(
        StepKind.WAIT,
        "3 managers for a desired 2: a scale-in is the guard's (termination policy), not a rebalance",
        target=2,
        goal={A: 2, B: 0, C: 0},
        plan=(
            "add us-east-1a -> 2-1-1 (tolerates 0)",
            "remove us-east-1b -> 2-0-1 (tolerates 0)",
            "remove us-east-1c -> 2-0-0 (tolerates 0)",
        ),
    )


# --- next_step: retire after our surge --------------------------------------------------------------------


def test_after_the_surge_a_non_leader_of_the_over_full_az_is_retired() -> None:
    view = cluster({A: 3, B: 2, C: 1})
    step = next_step(view, group(view, (A, B, C), desired=6), surge_from=5)
    assert step == RebalanceStep(
        StepKind.RETIRE,
        "3-2-1 -> 2-2-1 toward 2-2-1 (tolerates 1)",
        az=A,
        instance_id="i-002",
        target=5,
        goal={A: 2, B: 2, C: 1},
        plan=("remove us-east-1a -> 2-2-1 (tolerates 1)",),
    )
    assert step.describe() == "retire i-002 in us-east-1a: 3-2-1 -> 2-2-1 toward 2-2-1 (tolerates 1)"


def test_the_victim_comes_from_the_over_full_az_even_when_another_has_a_lower_id() -> None:
    # 2-3-1: B gives one up; i-002 (A) sorts before i-003 (B) but is not in B
    view = cluster({A: 2, B: 3, C: 1})
    step = next_step(view, group(view, (A, B, C), desired=6), surge_from=5)
    assert step == RebalanceStep(
        StepKind.RETIRE,
        "2-3-1 -> 2-2-1 toward 2-2-1 (tolerates 1)",
        az=B,
        instance_id="i-003",
        target=5,
        goal={A: 2, B: 2, C: 1},
        plan=("remove us-east-1b -> 2-2-1 (tolerates 1)",),
    )


def test_a_manager_in_standby_is_not_retired_through_the_group() -> None:
    # i-002 was put in Standby (desired down to 5 with it): of A's managers only i-003 is in service
    # besides the leader
    view = cluster({A: 3, B: 2, C: 1})
    step = next_step(view, group(view, (A, B, C), desired=5, states={"i-002": "Standby"}), surge_from=5)
    assert step == RebalanceStep(
        StepKind.RETIRE,
        "3-2-1 -> 2-2-1 toward 2-2-1 (tolerates 1)",
        az=A,
        instance_id="i-003",
        target=5,
        goal={A: 2, B: 2, C: 1},
        plan=("remove us-east-1a -> 2-2-1 (tolerates 1)",),
    )


def test_the_most_over_full_az_gives_one_up_first() -> None:
    # 1-3-4-0 toward 2-2-2-1 (or 1-2-2-2): B is one over, C two: C first, although B sorts first
    view = cluster({A: 1, B: 3, C: 4})
    step = next_step(view, group(view, (A, B, C, D), desired=8), surge_from=7)
    assert step == RebalanceStep(
        StepKind.RETIRE,
        "1-3-4-0 -> 1-3-3-0 toward 2-2-2-1 (tolerates 1)",
        az=C,
        instance_id="i-005",
        target=7,
        goal={A: 2, B: 2, C: 2, D: 1},
        plan=(
            "add us-east-1a -> 2-3-4-0 (tolerates 1)",
            "add us-east-1d -> 2-3-4-1 (tolerates 1)",
            "remove us-east-1b -> 2-2-4-1 (tolerates 1)",
            "remove us-east-1c -> 2-2-3-1 (tolerates 1)",
            "remove us-east-1c -> 2-2-2-1 (tolerates 1)",
        ),
    )


def test_equally_over_full_azs_go_by_name() -> None:
    # 2-4 toward 1-3 (i-006 is retained, not the group's): A and B are each one over: A first, however
    # many B holds
    view = cluster({A: 2, B: 4})
    step = next_step(view, group(view, (A, B), owned=[f"i-00{k}" for k in range(1, 6)]), surge_from=4)
    assert step == RebalanceStep(
        StepKind.RETIRE,
        "2-4 -> 1-4 toward 1-3 (tolerates 0)",
        az=A,
        instance_id="i-002",
        target=4,
        goal={A: 1, B: 3},
        plan=("remove us-east-1a -> 1-4 (tolerates 0)", "remove us-east-1b -> 1-3 (tolerates 0)"),
    )


def test_a_removal_below_the_tolerance_floor_is_skipped_for_a_safe_one() -> None:
    # the group dropped B: the goal 2-0-2-2 empties it, but 2-2-3-0 -> 2-1-3-0 would survive no AZ loss
    # where both ends survive one: C (one over) gives one up first, although B is two over
    view = cluster({A: 2, B: 2, C: 3})
    step = next_step(view, group(view, (A, C, D)), surge_from=6)
    assert step == RebalanceStep(
        StepKind.RETIRE,
        "2-2-3-0 -> 2-2-2-0 toward 2-0-2-2 (tolerates 1)",
        az=C,
        instance_id="i-005",
        target=6,
        goal={A: 2, B: 0, C: 2, D: 2},
        plan=(
            "add us-east-1d -> 2-2-3-1 (tolerates 1)",
            "add us-east-1d -> 2-2-3-2 (tolerates 1)",
            "remove us-east-1b -> 2-1-3-2 (tolerates 1)",
            "remove us-east-1b -> 2-0-3-2 (tolerates 1)",
            "remove us-east-1c -> 2-0-2-2 (tolerates 1)",
        ),
    )


def test_retiring_down_to_a_single_manager_is_allowed() -> None:
    # the group dropped B; our surge to 2 is in place: B's non-leader goes, one manager is left
    view = cluster({B: 2})
    step = next_step(view, group(view, (A, C), desired=2), surge_from=1)
    assert step == RebalanceStep(
        StepKind.RETIRE,
        "0-2-0 -> 0-1-0 toward 1-0-0 (tolerates 0)",
        az=B,
        instance_id="i-002",
        target=1,
        goal={A: 1, B: 0, C: 0},
        plan=(
            "add us-east-1a -> 1-2-0 (tolerates 0)",
            "remove us-east-1b -> 1-1-0 (tolerates 0)",
            "remove us-east-1b -> 1-0-0 (tolerates 0)",
        ),
    )


def test_an_over_full_az_the_group_cannot_retire_from_is_passed_over() -> None:
    # A's three managers are retained instances the group does not own: B, also over the goal, gives one up
    view = cluster({A: 3, B: 2, C: 1}, leader=4)
    step = next_step(view, group(view, (A, B, C), owned=["i-004", "i-005", "i-006"]), surge_from=2)
    assert step == RebalanceStep(
        StepKind.RETIRE,
        "3-2-1 -> 3-1-1 toward 2-0-0 (tolerates 0)",
        az=B,
        instance_id="i-005",
        target=2,
        goal={A: 2, B: 0, C: 0},
        plan=(
            "remove us-east-1a -> 2-2-1 (tolerates 1)",
            "remove us-east-1b -> 2-1-1 (tolerates 0)",
            "remove us-east-1b -> 2-0-1 (tolerates 0)",
            "remove us-east-1c -> 2-0-0 (tolerates 0)",
        ),
    )


def test_a_retire_is_shown_toward_the_best_layout_it_moves_to() -> None:
    # 1-1 toward one manager: 1-0 and 0-1 are equally good; the leader is in B, so A's manager goes, and
    # the step's reason, goal and plan name 0-1 (not 1-0, which would remove from B)
    view = cluster({A: 1, B: 1}, leader=2)
    step = next_step(view, group(view, (A, B), desired=2), surge_from=1)
    assert step == RebalanceStep(
        StepKind.RETIRE,
        "1-1 -> 0-1 toward 0-1 (tolerates 0)",
        az=A,
        instance_id="i-001",
        target=1,
        goal={A: 0, B: 1},
        plan=("remove us-east-1a -> 0-1 (tolerates 0)",),
    )


def test_the_leader_is_not_retired_when_another_az_reaches_an_equally_good_layout() -> None:
    # 1-1 toward one manager, the leader in A: A sorts first, but B's manager going reaches 1-0, as good
    # as 0-1, without a leader election
    view = cluster({A: 1, B: 1}, leader=1)
    step = next_step(view, group(view, (A, B), desired=2), surge_from=1)
    assert step == RebalanceStep(
        StepKind.RETIRE,
        "1-1 -> 1-0 toward 1-0 (tolerates 0)",
        az=B,
        instance_id="i-002",
        target=1,
        goal={A: 1, B: 0},
        plan=("remove us-east-1b -> 1-0 (tolerates 0)",),
    )


def test_the_leader_is_not_retired_even_from_the_most_over_full_az() -> None:
    # 3-2 toward two managers (2-0 or 0-2, three moves each); A's only manager the group can retire is the
    # leader (i-002 and i-003 are retained): toward 0-2 A is three over, but B's non-leader goes, toward 2-0
    view = cluster({A: 3, B: 2}, leader=1)
    step = next_step(view, group(view, (A, B), owned=["i-001", "i-004", "i-005"]), surge_from=2)
    assert step == RebalanceStep(
        StepKind.RETIRE,
        "3-2 -> 3-1 toward 2-0 (tolerates 0)",
        az=B,
        instance_id="i-004",
        target=2,
        goal={A: 2, B: 0},
        plan=(
            "remove us-east-1a -> 2-2 (tolerates 0)",
            "remove us-east-1b -> 2-1 (tolerates 0)",
            "remove us-east-1b -> 2-0 (tolerates 0)",
        ),
    )


def test_no_retire_is_chosen_while_our_surge_has_not_joined() -> None:
    # our surge to 3 is in service in B but has not joined: 2 managers for a target of 2, nothing to retire.
    # A retire would take C's manager toward 0-2-0 (B's only one is the leader); nor a second launch for the
    # same surge (desired would go to 4): the step waits, shown toward the first nearest goal
    view = cluster({B: 1, C: 1})
    step = next_step(view, group(view, (A, B, C), extra=[inst("i-new", B)]), surge_from=2)
    assert step == RebalanceStep(
        StepKind.WAIT,
        "our surge (desired 3 for a target of 2) is in service but only 2 managers are joined: a manager of "
        "the group was demoted or removed outside autojoin; no second launch (terminate the instance that "
        "is not a manager: the group launches another)",
        target=2,
        goal={A: 0, B: 0, C: 2},
        plan=("add us-east-1c -> 0-1-2 (tolerates 0)", "remove us-east-1b -> 0-0-2 (tolerates 0)"),
    )


def test_no_retirement_from_an_az_at_or_under_its_goal() -> None:
    # 2-3 toward 1-3 with MinManagers 4: only A is over, and its managers are retained (not the group's);
    # B is at its goal and must not be retired from instead
    view = cluster({A: 2, B: 3}, leader=3)
    g = group(view, (A, B), owned=["i-003", "i-004", "i-005"])
    step = next_step(view, g, surge_from=2, floor=4)
    assert step == RebalanceStep(
        StepKind.WAIT,
        "5 managers for a target of 4: no safe removal through mgr",
        target=4,
        goal={A: 1, B: 3},
        plan=("remove us-east-1a -> 1-3 (tolerates 0)",),
    )
    assert step.describe() == "wait: 5 managers for a target of 4: no safe removal through mgr"


# --- next_step: launch ------------------------------------------------------------------------------------


def test_a_launch_into_either_of_two_tied_azs() -> None:
    view = cluster({A: 3})
    step = next_step(view, group(view, (A, B, C)), surge_from=None)
    assert step == RebalanceStep(
        StepKind.LAUNCH,
        "3-0-0 -> 3-1-0 toward 1-1-1 (tolerates 0)",
        az=f"{B} or {C}",
        target=3,
        goal={A: 1, B: 1, C: 1},
        plan=(
            "add us-east-1b -> 3-1-0 (tolerates 0)",
            "add us-east-1c -> 3-1-1 (tolerates 0)",
            "remove us-east-1a -> 2-1-1 (tolerates 0)",
            "remove us-east-1a -> 1-1-1 (tolerates 1)",
        ),
    )
    assert step.describe() == "launch in us-east-1b or us-east-1c: 3-0-0 -> 3-1-0 toward 1-1-1 (tolerates 0)"


def test_a_launch_into_one_az() -> None:
    view = cluster({A: 3, B: 2})
    step = next_step(view, group(view, (A, B, C)), surge_from=None)
    assert step == RebalanceStep(
        StepKind.LAUNCH,
        "3-2-0 -> 3-2-1 toward 2-2-1 (tolerates 0)",
        az=C,
        target=5,
        goal={A: 2, B: 2, C: 1},
        plan=("add us-east-1c -> 3-2-1 (tolerates 0)", "remove us-east-1a -> 2-2-1 (tolerates 1)"),
    )
    assert step.describe() == "launch in us-east-1c: 3-2-0 -> 3-2-1 toward 2-2-1 (tolerates 0)"


def test_a_launch_is_checked_for_the_one_manager_it_adds() -> None:
    # 4-4-4-4-6 (22, survives 2 AZ losses) toward a layout of 5-5-4-4-4: one more in any of the four
    # emptiest AZs still survives 2 (5-4-4-4-6: the two largest hold 11 of 23, quorum 12); two more would not.
    # The step shows A, so its goal is the nearest best layout that adds in A
    e = "us-east-1e"
    view = cluster({A: 4, B: 4, C: 4, D: 4, e: 6})
    step = next_step(view, group(view, (A, B, C, D, e)), surge_from=None)
    assert step == RebalanceStep(
        StepKind.LAUNCH,
        "4-4-4-4-6 -> 5-4-4-4-6 toward 5-4-4-4-5 (tolerates 2)",
        az=f"{A} or {B} or {C} or {D}",
        target=22,
        goal={A: 5, B: 4, C: 4, D: 4, e: 5},
        plan=("add us-east-1a -> 5-4-4-4-6 (tolerates 2)", "remove us-east-1e -> 5-4-4-4-5 (tolerates 2)"),
    )


def test_a_launch_is_shown_toward_a_best_layout_that_adds_where_it_launches() -> None:
    # 0-1-0-2 toward three managers: 0-1-1-1 and 1-1-0-1 are both two moves away; the group launches
    # into A or C, the step shows A (-> 1-1-0-2), so its goal and plan are 1-1-0-1, which adds in A
    view = cluster({B: 1, D: 2})
    step = next_step(view, group(view, (A, B, C, D)), surge_from=None)
    assert step == RebalanceStep(
        StepKind.LAUNCH,
        "0-1-0-2 -> 1-1-0-2 toward 1-1-0-1 (tolerates 0)",
        az=f"{A} or {C}",
        target=3,
        goal={A: 1, B: 1, C: 0, D: 1},
        plan=("add us-east-1a -> 1-1-0-2 (tolerates 0)", "remove us-east-1d -> 1-1-0-1 (tolerates 1)"),
    )


def test_no_launch_into_the_emptiest_az_when_no_best_layout_adds_there() -> None:
    # 4-1-3-2 toward 3-1-3-3: the plan adds in D, the group would launch into B (the emptiest), which
    # already holds what the goal gives it
    view = cluster({A: 4, B: 1, C: 3, D: 2})
    step = next_step(view, group(view, (A, B, C, D)), surge_from=None)
    assert step == RebalanceStep(
        StepKind.WAIT,
        "the plan adds in us-east-1d but mgr would launch into us-east-1b",
        target=10,
        goal={A: 3, B: 1, C: 3, D: 3},
        plan=("add us-east-1d -> 4-1-3-3 (tolerates 1)", "remove us-east-1a -> 3-1-3-3 (tolerates 1)"),
    )


def test_the_wait_for_a_launch_elsewhere_names_every_az_on_both_sides() -> None:
    # 1-1 over four AZs: the best two are 2-0 (B or C keep theirs and take one more), the group would
    # launch into A or D
    view = cluster({B: 1, C: 1})
    step = next_step(view, group(view, (A, B, C, D)), surge_from=None)
    assert step == RebalanceStep(
        StepKind.WAIT,
        "the plan adds in us-east-1b or us-east-1c but mgr would launch into us-east-1a or us-east-1d",
        target=2,
        goal={A: 0, B: 0, C: 2, D: 0},
        plan=("add us-east-1c -> 0-1-2-0 (tolerates 0)", "remove us-east-1b -> 0-0-2-0 (tolerates 0)"),
    )
    assert step.describe() == f"wait: {step.reason}"


# --- the group ---------------------------------------------------------------------------------------------


def test_capacity_and_in_flight_by_lifecycle_state() -> None:
    insts = (
        inst("i-1", A, "InService"),
        inst("i-2", A, "Pending"),
        inst("i-3", B, "Pending:Wait"),
        inst("i-4", B, "Terminating:Wait"),
        inst("i-5", C, "Terminating"),
        inst("i-6", C, "Standby"),
        inst("i-7", C, None),
        inst("i-8", A, "InService", ec2="terminated"),
        inst("i-9", A, "Pending:Wait", ec2="shutting-down"),
    )
    g = ManagerGroup("mgr", (A, B, C), 3, 10, insts)
    assert [i.instance_id for i in g.capacity()] == ["i-1", "i-2", "i-3"]
    assert [i.instance_id for i in g.in_flight()] == ["i-2", "i-3", "i-4", "i-5"]


def test_next_launch_zones_are_the_least_populated_by_capacity() -> None:
    insts = (inst("i-1", A), inst("i-2", A), inst("i-3", B), inst("i-4", C, "Standby"), inst("i-5", D))
    assert ManagerGroup("mgr", (A, B, C), 4, 10, insts).next_launch_zones() == (C,)
    assert ManagerGroup("mgr", (A, B, C, D), 4, 10, insts).next_launch_zones() == (C,)
    assert ManagerGroup("mgr", (A, B, D), 4, 10, insts).next_launch_zones() == (B, D)
    assert ManagerGroup("mgr", (), 0, 10, insts).next_launch_zones() == ()


# --- zone watches and settling ------------------------------------------------------------------------------


def test_zone_watches_whole() -> None:
    later = T0 + timedelta(seconds=60)
    w = watch_zones({}, {A: True, B: False, C: None}, T0, 900)
    assert w == {A: ZoneWatch(impaired=True, changed_at=T0), B: ZoneWatch(), C: ZoneWatch()}
    # still bad: the time it became impaired is kept
    assert watch_zones(w, {A: True}, later, 900)[A] == ZoneWatch(impaired=True, changed_at=T0)
    # looking good: recovery under way, still impaired
    w = watch_zones(w, {A: False}, later, 900)
    assert w[A] == ZoneWatch(impaired=True, changed_at=T0, good_since=later)
    # bad again during recovery: the recovery is forgotten, the impairment keeps its start
    w = watch_zones(w, {A: True}, later + timedelta(seconds=60), 900)
    assert w[A] == ZoneWatch(impaired=True, changed_at=T0)
    # trusted again 900 s after it started looking good
    w = watch_zones(w, {A: False}, T0 + timedelta(seconds=200), 900)
    done = T0 + timedelta(seconds=1100)
    assert watch_zones(w, {A: False}, done, 900)[A] == ZoneWatch(impaired=False, changed_at=done)


def test_unsettled_reasons_whole() -> None:
    recovering = ZoneWatch(impaired=True, changed_at=T0, good_since=T0 + timedelta(seconds=30))
    assert unsettled({B: recovering}, [A, B], T0, 900) == f"{B} is impaired (recovering)"
    assert unsettled({B: ZoneWatch(impaired=True, changed_at=T0)}, [A, B], T0, 900) == f"{B} is impaired"
    calm = ZoneWatch(impaired=False, changed_at=T0)
    assert unsettled({B: calm}, [A, B], T0 + timedelta(seconds=100.7), 900) == (
        f"{B} recovered 100s ago (settling for 900s)"
    )
    assert unsettled({B: calm}, [A, B], T0 + timedelta(seconds=900), 900) is None
    assert unsettled({C: recovering}, [A, B], T0, 900) is None, "only the AZs asked about"


# --- tolerance now and the best possible ------------------------------------------------------------------


def test_tolerance_now_without_quorum_is_zero() -> None:
    # 3 voters, 2 of them down: 1 healthy of a quorum of 2
    view = cluster({A: 1, B: 1, C: 1}, down=[1, 2])
    assert zone_failures_now(view) == 0
    assert quorum_margin(view) == -1


def test_quorum_margin_without_managers_is_zero() -> None:
    assert quorum_margin(ClusterView(cluster="demo", zones=(A, B, C))) == 0


def test_best_tolerance() -> None:
    assert best_tolerance(5, (A, B, C)) == 1
    assert best_tolerance(5, (A, B, C), impaired=[C]) == 0, "3-2 over A and B survives no AZ loss"
    assert best_tolerance(0, (A, B, C)) == 0
    assert best_tolerance(3, (A, B), impaired=[A, B]) == 0, "no layout at all"


# --- drift -------------------------------------------------------------------------------------------------


def test_labels_of_an_instance_without_a_group() -> None:
    node = Node(instance_id="i-1", role=Role.MANAGER, az=A)
    loose = InstanceInfo(instance_id="i-1", az=A)
    assert expected_labels(node, loose) == {"az": A, "instance-id": "i-1", "asg": ""}


def test_protection_only_for_in_service_managers() -> None:
    manager = Node(instance_id="i-1", role=Role.MANAGER, az=A)
    worker = Node(instance_id="i-1", role=Role.WORKER, az=A)
    assert wants_protection(manager, inst("i-1", A)) is True
    assert wants_protection(manager, inst("i-1", A, "Pending:Wait")) is None
    assert wants_protection(worker, inst("i-1", A)) is None
    assert wants_protection(None, inst("i-1", A)) is None


# --- nearest goals -------------------------------------------------------------------------------------


def test_nearest_goals_count_an_az_missing_from_the_current_layout_as_empty() -> None:
    # C is new: 1-1-0 and 1-0-1 are both two moves from 2-0 (plus an empty C); 0-1-1 is four
    goals = nearest_goals({A: 2, B: 0}, {A: 1, B: 1, C: 0}, [A, B, C])
    assert goals == [{A: 1, B: 1, C: 0}, {A: 1, B: 0, C: 1}]


def test_nearest_goals_put_the_best_layout_first() -> None:
    # C was dropped: 3-2-0 and 2-3-0 are both two moves from 2-2-1; 3-2 is the best itself, so first
    goals = nearest_goals({A: 2, B: 2, C: 1}, {A: 3, B: 2}, [A, B])
    assert goals == [{A: 3, B: 2, C: 0}, {A: 2, B: 3, C: 0}]
