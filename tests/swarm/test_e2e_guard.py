"""The quorum guard end to end: the real template and handlers (on_launch, the termination policy,
on_terminate and its schedule) on the local cloud, the production SwarmOrchestrator, and a real Docker
Swarm of lab daemons. Every demotion is awaited on the real swarm (ManagerStatus gone) before the node
leaves and is removed.

The local cloud's clock is simulated; the removal service of OnTerminateFunction gets a clock that also
really sleeps, so its polls of the real swarm span real time. Nothing here asserts a time."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autojoin.domain.model import Role
from autojoin.lab import Lab
from autojoin.lab.e2e import E2E, e2e_cloud
from autojoin.ports import Clock

pytestmark = pytest.mark.swarm
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


class WallClock(Clock):
    """Simulated now (the local cloud's), real waiting: each sleep also passes on the simulated clock."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    def now(self) -> Any:
        return self.sim.now()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        self.sim.sleep(seconds)


@pytest.fixture(scope="module")
def guard(lab: Lab) -> Iterator[E2E]:
    with e2e_cloud(lab, ZONES, cluster="guard", template=TEMPLATE) as kit:
        deps = kit.cloud.deps_for("OnTerminateFunction")
        deps.__dict__["clock"] = WallClock(kit.cloud.clock)  # before anything of it is built
        kit.cloud.set_desired(kit.cloud.stack.manager_group, 5)
        kit.cloud.run_until_idle(1800)
        kit.cloud.enable_schedules()  # the guard's pass, every simulated minute
        yield kit


def managers(kit: E2E) -> list[Any]:
    return [m for m in kit.orchestrator.members() if m.role is Role.MANAGER]


def layout(kit: E2E) -> dict[str, int]:
    return dict(sorted(Counter(m.labels["az"] for m in managers(kit)).items()))


def minutes(kit: E2E, n: int, done: Any) -> None:
    """Advance simulated minutes (each runs the guard's pass and whatever it sets off on the real swarm)
    until ``done()``; the swarm must have a leader after every one of them."""
    for _ in range(n):
        kit.cloud.advance(60)
        assert any(m.leader for m in managers(kit)), "the swarm lost its leader"
        if done():
            return
    raise AssertionError(f"not done after {n} simulated minutes: {layout(kit)}")


def terminate_results(kit: E2E, since: int) -> list[dict[str, Any]]:
    """Every removal decision since invocation ``since``: a hook's own, the waiting ones it worked on the
    way (``also``), and those the guard's pass resumed."""
    out: list[dict[str, Any]] = []
    for i in kit.cloud.invocations[since:]:
        if i.function != "OnTerminateFunction" or not isinstance(i.result, dict):
            continue
        for d in ([i.result] if "outcome" in i.result else []) + list(i.result.get("resumed", [])):
            out += [d, *d.get("also", [])]
    return out


def in_swarm(kit: E2E, instance_id: str) -> str:
    info = kit.lab.docker(kit.node(instance_id), "info", "--format", "{{.Swarm.LocalNodeState}}")
    return info.stdout.strip()


def test_five_managers_2_2_1_scaled_to_three_end_1_1_1_with_every_demotion_awaited(guard: E2E) -> None:
    cloud = guard.cloud
    group = cloud.stack.manager_group
    assert sorted(layout(guard).values(), reverse=True) == [2, 2, 1]  # which AZ gets 1: Auto Scaling's pick
    before_ids = {m.instance_id for m in managers(guard)}
    since = len(cloud.invocations)
    cloud.set_desired(group, 3)
    minutes(guard, 20, lambda: len(managers(guard)) == 3 and sum(cloud.layout(group).values()) == 3)
    now = managers(guard)
    assert layout(guard) == {"us-east-1a": 1, "us-east-1b": 1, "us-east-1c": 1}
    assert all(m.ready and m.reachable for m in now)  # 3 voters, all healthy: no Down voter left
    assert len(guard.orchestrator.members()) == 3  # the removed nodes are gone from the list too
    removed = [r for r in terminate_results(guard, since) if r["outcome"] == "removed"]
    assert len(removed) == 2
    for r in removed:
        assert r["steps"] == ["drain", "demote", "demotion-effective", "leave", "rm"]
        assert r["result"] == "CONTINUE"
        # its real daemon left the swarm ("" once the terminated instance's daemon was stopped by the kit)
        assert in_swarm(guard, r["instance_id"]) in {"inactive", ""}
    assert {r["instance_id"] for r in removed} < before_ids
    policy = [p for p in cloud.policy_calls if p.group == group]
    assert policy and all(p.accepted for p in policy[-2:])  # the termination policy agreed to each


def test_three_managers_terminated_at_once_two_go_and_the_third_is_retained(guard: E2E) -> None:
    cloud = guard.cloud
    group = cloud.stack.manager_group
    cloud.set_desired(group, 5)
    minutes(guard, 15, lambda: len(managers(guard)) == 5 and all(m.ready for m in managers(guard)))
    assert sorted(layout(guard).values(), reverse=True) == [2, 2, 1]
    since = len(cloud.invocations)
    by_zone: dict[str, str] = {}
    for m in managers(guard):
        by_zone.setdefault(m.labels["az"], m.instance_id)
    victims = list(by_zone.values())
    for iid in victims:  # the same moment: nothing runs in between
        cloud.terminate_instance(iid, decrement=True)
    minutes(
        guard,
        20,
        lambda: (
            {
                r["instance_id"]
                for r in terminate_results(guard, since)
                if r["outcome"] in {"removed", "retained"}
            }
            == set(victims)
        ),
    )
    outcomes = Counter(
        r["outcome"] for r in terminate_results(guard, since) if r["outcome"] in {"removed", "retained"}
    )
    assert outcomes == Counter({"removed": 2, "retained": 1})
    (retained,) = [r for r in terminate_results(guard, since) if r["outcome"] == "retained"]
    assert retained["result"] == "ABANDON" and "MinManagers" in retained["reason"]
    assert retained["operator_action"]
    now = managers(guard)
    assert len(now) == 3 and all(m.ready and m.reachable for m in now)
    assert retained["instance_id"] in {m.instance_id for m in now}  # kept in the swarm, a healthy voter
    assert in_swarm(guard, retained["instance_id"]) == "active"
    # the two that went were the ones whose removal kept the best layout: one manager per AZ is left
    assert layout(guard) == {"us-east-1a": 1, "us-east-1b": 1, "us-east-1c": 1}
