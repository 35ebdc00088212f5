"""Fault injection (localcloud/faults.py): AWS errors, killed functions, repeated/late/lost events — and
that autojoin's handlers come through them: retried, completed exactly once, nothing left waiting."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from autojoin.domain.model import Role
from autojoin.localcloud.faults import FaultPlan, Faults, FunctionKilled, KillPoint, install, merge
from autojoin.scenario.model import parse_scenario
from autojoin.scenario.runner import simulate
from autojoin.scenario.spec import parse_state
from autojoin.scenario.world import World

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"


def _model(service: str, op: str) -> Any:
    return SimpleNamespace(name=op, service_model=SimpleNamespace(service_name=service))


def _faults(**plan: Any) -> Faults:
    import random

    p = FaultPlan(**plan)
    return Faults(p, random.Random(p.seed))


def _scenario(doc: dict[str, Any]) -> Any:
    return parse_scenario(doc, REPO / "scenarios" / "generated.yaml")


# --- the mechanics, without a cloud ---------------------------------------------------------------


def test_no_function_running_means_no_fault() -> None:
    f = _faults(throttle=1.0, sdk_retries=False)
    assert f.before_call(_model("autoscaling", "CompleteLifecycleAction")) is None
    assert f.log == []


def test_a_throttled_call_answers_with_the_services_error_code() -> None:
    f = _faults(throttle=1.0, sdk_retries=False)
    f.stack.append(f.starting("OnLaunchFunction"))
    http, parsed = f.before_call(_model("autoscaling", "CompleteLifecycleAction"))
    assert http.status_code == 400
    assert parsed["Error"]["Code"] == "Throttling"
    http, parsed = f.before_call(_model("dynamodb", "PutItem"))
    assert parsed["Error"]["Code"] == "ThrottlingException"
    assert f.log == [
        "Throttling OnLaunchFunction autoscaling.CompleteLifecycleAction",
        "ThrottlingException OnLaunchFunction dynamodb.PutItem",
    ]


def test_sdk_retries_absorb_a_fault_unless_every_attempt_draws_one() -> None:
    # legacy retry mode (no retries config): 5 attempts; at 50% per attempt about 1 call in 32 fails
    f = _faults(seed=1, throttle=0.5)
    f.stack.append(f.starting("ReconcileFunction"))
    failed = sum(f.before_call(_model("ec2", "DescribeInstances")) is not None for _ in range(2000))
    assert 30 < failed < 100
    standard = {"client_config": SimpleNamespace(retries={"mode": "standard", "max_attempts": 1})}
    failed = sum(f.before_call(_model("ec2", "DescribeInstances"), standard) is not None for _ in range(2000))
    assert 800 < failed < 1200  # one attempt: the share itself


def test_only_the_named_services_and_operations_are_faulted() -> None:
    f = _faults(throttle=1.0, sdk_retries=False, services=("dynamodb",), operations=("PutItem",))
    f.stack.append(f.starting("OnLaunchFunction"))
    assert f.before_call(_model("dynamodb", "GetItem")) is None
    assert f.before_call(_model("autoscaling", "PutItem")) is None
    assert f.before_call(_model("dynamodb", "PutItem")) is not None


def test_a_kill_point_stops_the_run_before_the_chosen_call() -> None:
    f = _faults(kills=(KillPoint(function="OnTerminateFunction", invocation=2, after_calls=1),))
    f.stack.append(f.starting("OnTerminateFunction"))  # the first run: not killed
    for _ in range(3):
        assert f.before_call(_model("autoscaling", "DescribeAutoScalingInstances")) is None
    f.stack.pop()
    f.stack.append(f.starting("OnTerminateFunction"))
    assert f.before_call(_model("dynamodb", "GetItem")) is None
    with pytest.raises(FunctionKilled):
        f.before_call(_model("autoscaling", "CompleteLifecycleAction"))
    assert f.log == ["kill OnTerminateFunction before call 2 (autoscaling.CompleteLifecycleAction)"]


def test_the_same_seed_gives_the_same_faults() -> None:
    plan = {"seed": 5, "duplicate": 0.5, "late": 0.3, "lose": 0.1, "kill": 0.3, "throttle": 0.4}

    def play() -> list[str]:
        f = _faults(**plan)
        for n in range(40):
            f.copies({"id": f"e{n}", "detail-type": "x"})
            f.stack.append(f.starting("OnLaunchFunction"))
            try:
                for _ in range(5):
                    f.before_call(_model("ssm", "SendCommand"), {})
            except FunctionKilled:
                pass
            f.stack.pop()
        return f.log

    first = play()
    assert first == play()
    kinds = {line.split(" ", 1)[0] for line in first}
    assert {"lost", "duplicated", "late", "kill"} <= kinds


def test_flags_override_the_scenarios_plan() -> None:
    base = FaultPlan(seed=3, throttle=0.1, duplicate=0.5)
    merged = merge(base, {"throttle": 0.2, "lose": None})
    assert merged is not None
    assert (merged.seed, merged.throttle, merged.duplicate, merged.lose) == (3, 0.2, 0.5, 0.0)
    assert merge(None, {"throttle": None}) is None


# --- on the local cloud ---------------------------------------------------------------------------


def test_a_throttled_completion_is_retried_by_lambda_then_goes_to_the_failure_destination() -> None:
    spec = parse_state({"cluster": "demo", "managers": 3, "workers": 0})
    with World(spec, seed=0, template=TEMPLATE) as world:
        plan = FaultPlan(throttle=1.0, sdk_retries=False, operations=("CompleteLifecycleAction",))
        faults = install(world.cloud, plan)
        with world.capture():
            world.cloud.set_desired(world.groups[Role.WORKER], 1)
            world.advance_to(400)  # the first run, then Lambda's retries after 60 s and 120 s more
        runs = [i for i in world.new_invocations() if i.function == "OnLaunchFunction"]
        assert [(i.attempt, i.outcome) for i in runs] == [(1, "error"), (2, "error"), (3, "error")]
        assert [f["function"] for f in world.cloud.failures] == ["OnLaunchFunction"]
        assert world.cloud.failures[0]["record"]["requestContext"]["condition"] == "RetriesExhausted"
        assert faults.counts() == {"Throttling": 3}
        assert world.observe().groups["worker"] == {"Pending:Wait": 1}


def test_a_launch_killed_half_way_is_retried_and_completed_exactly_once() -> None:
    loaded = _scenario(
        {
            "cluster": {"cluster": "demo", "managers": 3, "workers": 0},
            "settle": 900,
            "steps": [{"at": 60, "action": "scale", "group": "worker", "desired": 1}],
            "faults": {"kills": [{"function": "OnLaunchFunction", "invocation": 1, "after_calls": 3}]},
            "expect": {"workers": 1, "pending_actions": 0, "lifecycle": {"CONTINUE": 1, "ABANDON": 0}},
        }
    )
    result = simulate(loaded, template=TEMPLATE)
    assert result.faults and result.faults[0].startswith("kill OnLaunchFunction before call 4")
    assert result.steps[0].functions.get("OnLaunchFunction", 0) >= 2  # killed, then Lambda's retry
    assert result.passed, [str(v) for v in result.all_violations] + [str(c) for _, c in result.failed_checks]


def test_every_event_repeated_still_completes_each_action_once() -> None:
    loaded = _scenario(
        {
            "cluster": {"cluster": "demo", "managers": 3, "workers": 1},
            "settle": 900,
            "steps": [
                {"at": 60, "action": "scale", "group": "worker", "desired": 3},
                {"at": "+5m", "action": "scale", "group": "worker", "desired": 2},
            ],
            "faults": {"seed": 2, "duplicate": 1.0, "late": 0.5, "max_delay": 120},
            "expect": {"workers": 2, "pending_actions": 0, "lifecycle": {"CONTINUE": 3, "ABANDON": 0}},
        }
    )
    result = simulate(loaded, template=TEMPLATE)
    assert any(line.startswith("duplicated") for line in result.faults)
    assert result.passed, [str(v) for v in result.all_violations] + [str(c) for _, c in result.failed_checks]


def test_a_launch_whose_lambda_attempts_all_die_is_completed_by_the_reconciler() -> None:
    kills = [{"function": "OnLaunchFunction", "invocation": n, "after_calls": 2} for n in (1, 2, 3)]
    loaded = _scenario(
        {
            "cluster": {"cluster": "demo", "managers": 3, "workers": 0},
            "settle": 1800,
            "steps": [{"at": 60, "action": "scale", "group": "worker", "desired": 1}],
            "faults": {"kills": kills},
            "expect": {"workers": 1, "pending_actions": 0, "lifecycle": {"CONTINUE": 1, "ABANDON": 0}},
        }
    )
    result = simulate(loaded, template=TEMPLATE)
    # the first run dies half way; the reconciler's tick finds the waiting launch and joins it, so the
    # later attempts (killed too if they get as far) have nothing left to do
    assert result.faults[0].startswith("kill OnLaunchFunction before call 3")
    assert result.steps[0].functions.get("ReconcileFunction", 0) >= 1
    assert result.passed, [str(v) for v in result.all_violations] + [str(c) for _, c in result.failed_checks]


@pytest.mark.xfail(
    strict=True,
    reason="defect: a terminate lifecycle event that EventBridge loses is never worked — the guard's "
    "schedule tick works only removals it has a record of and does not sweep Terminating:Wait instances "
    "(the reconciler does this for launches), so the hook times out (a worker terminated undrained; a "
    "manager left to its DefaultResult/retention). Found by simulate --chaos 8 --seed 900 --throttle 0.03 "
    "--no-sdk-retries --duplicate 0.5 --lose 0.1 (timeline 0).",
)
def test_a_lost_terminate_event_is_still_worked_before_its_hook_times_out() -> None:
    loaded = _scenario(
        {
            "cluster": {"cluster": "demo", "managers": 3, "workers": 2},
            "settle": 1200,
            "steps": [{"at": 60, "action": "scale", "group": "worker", "desired": 1}],
            "faults": {"lose": 1.0},
            "expect": {"workers": 1, "pending_actions": 0},
        }
    )
    result = simulate(loaded, template=TEMPLATE)
    assert any(line.startswith("lost EC2 Instance-terminate Lifecycle Action") for line in result.faults)
    assert result.passed, [str(v) for v in result.all_violations] + [str(c) for _, c in result.failed_checks]
