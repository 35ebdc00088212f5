"""Fuzzing every handler (hypothesis) on the local cloud with mutated real events (the CLI's fuzzers are
in test_fuzz_cli.py: one local cloud per process, and this module keeps one open).

What must hold for any input: no traceback (a handler never raises on bad input: that would be a retry
loop; the CLI prints one ``error: …`` line and exits 2), no completion with a wrong result (garbage
completes no lifecycle action, removes or demotes no node, moves no AWSCURRENT token; a termination
policy answer names only instances it was offered), no token in what comes back.

Example counts are small for ``make test``; ``AUTOJOIN_FUZZ_EXAMPLES=500`` runs each fuzzer longer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autojoin.errors import BadInput
from autojoin.scenario.invariants import token_violations
from autojoin.scenario.spec import parse_state
from autojoin.scenario.world import World

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
EVENTS = REPO / "events"
EXAMPLES = int(os.environ.get("AUTOJOIN_FUZZ_EXAMPLES", "12"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 12,  # make test: the same examples every build
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SLOW = settings(FUZZ, max_examples=max(3, EXAMPLES // 8))

_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["", "i-", "i-00000000000000101", "autojoin-launch", "CONTINUE", "x" * 3000]),
)
_json = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


def _sample(name: str) -> dict[str, Any]:
    data = json.loads((EVENTS / name).read_text())
    assert isinstance(data, dict)
    return data


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw: st.DrawFn, names: tuple[str, ...]) -> Any:
    """A real sample event with a few fields deleted or replaced by anything JSON can hold — or, now and
    then, any JSON value at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_json)
    event = _sample(draw(st.sampled_from(names)))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(event))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = event
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_json)
    return event


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    spec = parse_state({"cluster": "demo", "managers": 3, "workers": 2})
    with World(spec, seed=0, template=TEMPLATE) as w:
        yield w


def _members(w: World) -> set[tuple[str, str]]:
    return {(m.instance_id, str(m.role)) for m in w.observe().members if m.up}


def _current(w: World, logical_id: str) -> str:
    sm = w.cloud.session.client("secretsmanager")
    arn = w.stack.physical[logical_id]["Ref"]
    versions = sm.list_secret_version_ids(SecretId=arn)["Versions"]
    return next(v["VersionId"] for v in versions if "AWSCURRENT" in v.get("VersionStages", []))


def _run(w: World, function: str, event: Any) -> Any:
    """Invoke ``function`` with ``event`` (ids rewritten to the world's) and check what must hold."""
    members = _members(w)
    done = len(w.cloud.lifecycle_results)
    secrets = (_current(w, "ManagerTokenSecret"), _current(w, "WorkerTokenSecret"))
    payload = w.rewrite_event(event) if isinstance(event, dict) else event
    with w.capture():
        # Lambda's invoke takes any JSON payload; LocalCloud.invoke only mappings: its runner, then
        result, error, _ = w.cloud._call(function, payload)
        if error is not None:
            raise error  # the handler raised: Lambda would retry garbage forever
        w.cloud.clock.run_due()
    assert w.cloud.lifecycle_results[done:] == [], f"{function} completed an action on {event!r}"
    assert _members(w) == members, f"{function} changed the swarm on {event!r}"
    assert (_current(w, "ManagerTokenSecret"), _current(w, "WorkerTokenSecret")) == secrets
    json.dumps(result)
    assert token_violations([], [], [], [result]) == []
    return result


LIFECYCLE = (
    "autoscaling_launch_manager.json",
    "autoscaling_launch_worker.json",
    "autoscaling_launch_unknown_group.json",
    "autoscaling_launch_from_warmpool.json",
    "autoscaling_test_notification.json",
)
TERMINATE = (
    "autoscaling_terminate_manager.json",
    "autoscaling_terminate_worker.json",
    "autoscaling_terminate_other_hook.json",
    "autoscaling_terminate_to_warmpool.json",
)
RESULTS = (
    "autoscaling_launch_successful.json",
    "autoscaling_launch_unsuccessful.json",
    "autoscaling_terminate_successful.json",
    "autoscaling_terminate_unsuccessful.json",
)
POLICY = (
    "termination_policy_scale_in.json",
    "termination_policy_instance_refresh.json",
    "termination_policy_rebalance.json",
    "termination_policy_max_instance_lifetime.json",
)
ROTATION = (
    "secretsmanager_rotation_create_secret.json",
    "secretsmanager_rotation_set_secret.json",
    "secretsmanager_rotation_test_secret.json",
    "secretsmanager_rotation_finish_secret.json",
)


@FUZZ
@given(event=mutated(LIFECYCLE))
def test_on_launch_never_raises_and_completes_nothing_on_garbage(world: World, event: Any) -> None:
    result = _run(world, "OnLaunchFunction", event)
    assert isinstance(result, dict)


@FUZZ
@given(event=mutated((*TERMINATE, "scheduled_guard.json")))
def test_on_terminate_never_raises_and_removes_nothing_on_garbage(world: World, event: Any) -> None:
    result = _run(world, "OnTerminateFunction", event)
    assert isinstance(result, dict)


@FUZZ
@given(event=mutated(POLICY))
def test_termination_policy_answers_only_with_instances_it_was_offered(world: World, event: Any) -> None:
    result = _run(world, "TerminationPolicyFunction", event)
    assert isinstance(result, dict) and isinstance(result.get("InstanceIDs"), list)
    offered = event.get("Instances") if isinstance(event, dict) else None
    listed = offered if isinstance(offered, list) else []
    ids = [i.get("InstanceId") for i in listed if isinstance(i, dict)]
    real = {world.aliases.real(i) for i in ids if isinstance(i, str)}
    assert set(result["InstanceIDs"]) <= real, (event, result)


@FUZZ
@given(event=mutated(("scheduled_reconcile.json", *RESULTS)))
def test_reconcile_never_raises_on_garbage(world: World, event: Any) -> None:
    result = _run(world, "ReconcileFunction", event)
    assert isinstance(result, dict)


@FUZZ
@given(event=mutated(ROTATION))
def test_rotate_tokens_refuses_garbage_and_moves_no_current_token(world: World, event: Any) -> None:
    # the one handler that refuses by raising: a rotation step that fails leaves AWSPENDING unpromoted
    # (Secrets Manager marks the rotation failed; nothing retries it in a loop). Only BadInput may come.
    try:
        result = _run(world, "RotateTokensFunction", event)
    except BadInput:
        return
    assert isinstance(result, dict)
