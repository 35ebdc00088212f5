"""``autojoin simulate``: run a scenario's timeline on a seeded LocalCloud, check its expectations and the
architecture's invariants (scenario/invariants.py), and keep the timeline for rendering.

Each step owns a window of simulated time: from its ``at`` until the next step's ``at`` (the last step:
``settle`` seconds more). Its expectations and the quorum/AZ checks look at the cluster when the window
ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autojoin.domain.model import Role
from autojoin.localcloud.faults import FaultPlan
from autojoin.localcloud.faults import install as install_faults
from autojoin.scenario import blows
from autojoin.scenario.invariants import (
    Violation,
    invocation_violations,
    lifecycle_violations,
    step_violations,
    token_violations,
    unfinished_violations,
)
from autojoin.scenario.model import DISRUPTIONS, Expect, LoadedScenario, Selector, TimedStep
from autojoin.scenario.observe import ClusterState
from autojoin.scenario.world import World

Progress = Callable[[int, int, str], None]  # (done, total, what)


@dataclass(frozen=True)
class Check:
    key: str
    expected: Any
    actual: Any

    @property
    def ok(self) -> bool:
        return bool(self.expected == self.actual)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "expected": self.expected, "actual": self.actual, "ok": self.ok}

    def __str__(self) -> str:
        return f"{self.key}: expected {self.expected}, got {self.actual}"


@dataclass
class StepResult:
    index: int
    at: float
    action: str
    describe: str
    note: str | None
    state: ClusterState
    checks: list[Check] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    autojoin_acted: bool = False
    invocations: int = 0
    functions: dict[str, int] = field(default_factory=dict)  # invocations per function (logical id)
    changes: dict[str, int] = field(default_factory=dict)  # "Function:Operation" -> changing AWS calls
    error: str | None = None  # the action could not be carried out
    unsurvivable: str | None = None  # a blow no guard survives struck here (scenario/blows.py): why

    @property
    def ok(self) -> bool:
        return self.error is None and not self.violations and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "at": self.at,
            "action": self.action,
            "step": self.describe,
            "note": self.note,
            "ok": self.ok,
            "error": self.error,
            "unsurvivable": self.unsurvivable,
            "autojoin_acted": self.autojoin_acted,
            "invocations": self.invocations,
            "functions": dict(self.functions),
            "changes": dict(self.changes),
            "expect": [c.to_json() for c in self.checks],
            "violations": [v.to_json() for v in self.violations],
            "state": self.state.to_json(),
        }


@dataclass
class SimulationResult:
    name: str
    path: str
    seed: int
    initial: ClusterState
    steps: list[StepResult]
    final: ClusterState
    final_checks: list[Check] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)  # found over the whole run
    faults: list[str] = field(default_factory=list)  # what the fault plan injected, in order

    @property
    def failed_checks(self) -> list[tuple[int | None, Check]]:
        out: list[tuple[int | None, Check]] = [(s.index, c) for s in self.steps for c in s.checks if not c.ok]
        return out + [(None, c) for c in self.final_checks if not c.ok]

    @property
    def errors(self) -> list[tuple[int, str]]:
        return [(s.index, s.error) for s in self.steps if s.error]

    @property
    def all_violations(self) -> list[Violation]:
        return [v for s in self.steps for v in s.violations] + self.violations

    @property
    def passed(self) -> bool:
        return not (self.failed_checks or self.errors or self.all_violations)

    @property
    def unsurvivable(self) -> list[tuple[int, str]]:
        """(step, why) of each blow that no guard could have survived (scenario/blows.py)."""
        return [(s.index, s.unsurvivable) for s in self.steps if s.unsurvivable]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "path": self.path,
            "seed": self.seed,
            "passed": self.passed,
            "initial": self.initial.to_json(),
            "steps": [s.to_json() for s in self.steps],
            "final": self.final.to_json(),
            "final_expect": [c.to_json() for c in self.final_checks],
            "violations": [v.to_json() for v in self.all_violations],
            "failed_expectations": [{"step": i, **c.to_json()} for i, c in self.failed_checks],
            "errors": [{"step": i, "error": e} for i, e in self.errors],
            "unsurvivable": [{"step": i, "why": why} for i, why in self.unsurvivable],
            "faults": list(self.faults),
        }


def check(expect: Expect | None, state: ClusterState) -> list[Check]:
    if expect is None:
        return []
    out: list[Check] = []
    for key, wanted in expect.items():
        want: Any = wanted
        got: Any
        if key == "has_leader":
            got = state.has_leader
        elif key == "managers":
            got = state.managers
        elif key == "voters":
            got = state.voters
        elif key == "workers":
            got = state.workers
        elif key == "layout":
            want = {z: int(wanted.get(z, 0)) for z in state.zones}
            got = {z: state.layout.get(z, 0) for z in state.zones}
        elif key == "tolerates_zone_failures":
            got = state.zone_failures_now
        elif key == "tolerates_node_failures":
            got = state.node_failures_now
        elif key == "lifecycle":
            got = {k: state.lifecycle.get(k, 0) for k in want}
        elif key == "in_service":
            got = {r: state.groups.get(r, {}).get("InService", 0) for r in want}
        elif key == "pending_actions":
            got = state.pending_actions
        else:  # pragma: no cover - Expect forbids other keys
            raise AssertionError(key)
        out.append(Check(key, _plain(want), _plain(got)))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(getattr(k, "value", k)): v for k, v in value.items()}
    return value


_READS = ("Describe", "Get", "List", "Query", "Scan", "BatchGet")


class _Runner:
    def __init__(self, world: World) -> None:
        self.world = world
        self.cloud = world.cloud

    def select(self, selector: Selector) -> str:
        w = self.world
        if selector.instance_id:
            real = w.aliases.real(selector.instance_id)
            live = {i.instance_id for r in Role for i in w.instances(r) if i.lifecycle_state == "InService"}
            if real not in live:
                raise _StepError(f"{selector.instance_id} is not an InService instance")
            return real
        if selector.leader:
            leader: str | None = self.cloud.swarm.leader()
            if leader is None:
                raise _StepError("the swarm has no leader to select")
            return str(leader)
        roles = [selector.role] if selector.role else list(Role)
        candidates = sorted(
            (
                i.instance_id
                for r in roles
                for i in w.instances(r)
                if i.lifecycle_state == "InService" and (selector.zone is None or i.az == selector.zone)
            ),
            key=w.sort_key,
        )
        if len(candidates) < selector.index:
            raise _StepError(f"no {selector}: {len(candidates)} InService instance(s) match")
        return str(candidates[selector.index - 1])

    def apply(self, ts: TimedStep) -> None:
        step, cloud, w = ts.step, self.cloud, self.world
        a = step.action
        if a == "scale":
            assert ts.group_role is not None and step.desired is not None
            cloud.set_desired(w.groups[ts.group_role], step.desired)
        elif a == "terminate":
            cloud.terminate_instance(self.select(step.selector), decrement=step.decrement)
        elif a == "crash":
            cloud.crash_instance(self.select(step.selector))
        elif a == "az_outage":
            cloud.zone_outage(str(step.zone))
        elif a == "az_recover":
            cloud.zone_recover(str(step.zone))
        elif a == "instance_refresh":
            assert ts.group_role is not None
            prefs = step.preferences.given() if step.preferences else None
            cloud.start_instance_refresh(w.groups[ts.group_role], preferences=prefs)
        elif a == "rotate_tokens":
            role = step.role or Role.MANAGER
            cloud.rotate_secret("ManagerTokenSecret" if role is Role.MANAGER else "WorkerTokenSecret")
        elif a == "deliver":
            assert ts.event is not None
            cloud.deliver(w.rewrite_event(dict(ts.event)), duplicate=step.duplicate, delay=step.delay)
        elif a == "set_zones":
            assert ts.group_role is not None and step.zones is not None
            w.set_group_zones(ts.group_role, step.zones)
        elif a == "wait":
            w.advance_to(ts.at + (step.seconds or 0.0))
        cloud.clock.run_due()


class _StepError(Exception):
    pass


BLOWS = frozenset({"az_outage", "crash"})  # the world's blows a quorum guard might not survive


def _voters(world: World) -> blows.Voters:
    return blows.voters_of(world.cloud.swarm.snapshot())


def simulate(
    loaded: LoadedScenario,
    *,
    seed: int | None = None,
    template: Path | None = None,
    progress: Progress | None = None,
    faults: FaultPlan | None = None,
) -> SimulationResult:
    """Run ``loaded``; ``faults`` (default: the scenario's ``faults:``) makes the local cloud hostile."""
    scenario = loaded.scenario
    plan = faults if faults is not None else scenario.faults
    the_seed = scenario.seed if seed is None else seed
    steps = loaded.steps
    with World(scenario.cluster, seed=the_seed, template=template) as world:
        runner = _Runner(world)
        injected = install_faults(world.cloud, plan) if plan is not None and plan.active else None
        current: list[int | None] = [None]
        watched: list[Violation] = []
        removals: list[blows.Removal] = []

        def on_invocation(fn: str, before: ClusterState, after: ClusterState) -> None:
            watched.extend(invocation_violations(fn, before, after, current[0]))
            if after.voters < before.voters:
                removals.append(blows.Removal(before.at, before.voters, after.voters))
            if progress and current[0] is not None:
                step = steps[current[0] - 1]
                runs = len(world.cloud.invocations)
                progress(current[0] - 1, len(steps), f"{step.step.describe()} ({runs} function runs)")

        world.watch_invocations(on_invocation)
        initial = world.observe()
        prev = initial
        results: list[StepResult] = []
        for k, ts in enumerate(steps):
            if progress:
                progress(k, len(steps), ts.step.describe())
            current[0] = ts.index
            seen = len(watched)
            error: str | None = None
            unsurvivable: str | None = None
            broken = False
            before = len(world.cloud.invocations)
            calls_before = len(world.cloud.calls)
            with world.capture():
                try:
                    world.advance_to(ts.at)
                    before = len(world.cloud.invocations)
                    if ts.step.action in BLOWS:
                        struck = _voters(world)
                        runner.apply(ts)
                        unsurvivable = blows.judge(
                            ts.step.describe(),
                            struck,
                            _voters(world),
                            len(scenario.cluster.zones),
                            last=removals[-1] if removals else None,
                            now=world.elapsed(),
                        )
                    else:
                        runner.apply(ts)
                except _StepError as exc:
                    error = str(exc)
                except Exception as exc:  # a refusal of the local cloud (min size, ...) fails the step
                    error = f"{type(exc).__name__}: {exc}"
                last = k == len(steps) - 1
                end = ts.at + ((ts.step.seconds or 0.0) if ts.step.action == "wait" else 0.0)
                try:
                    world.advance_to(end + scenario.settle if last else max(steps[k + 1].at, end))
                except Exception as exc:  # the simulation itself failed: report it, run no further
                    error = f"the local cloud failed while time ran: {type(exc).__name__}: {exc}"
                    broken = True
            state = world.observe()
            acted = len(world.cloud.invocations) > before
            mine = watched[seen:]
            stepwise = [
                v
                for v in step_violations(
                    prev, state, ts.index, disruptive=ts.step.action in DISRUPTIONS, autojoin_acted=acted
                )
                if v.rule not in {w.rule for w in mine}
            ]
            result = StepResult(
                index=ts.index,
                at=ts.at,
                action=ts.step.action,
                describe=ts.step.describe(),
                note=ts.step.note,
                state=state,
                checks=check(ts.step.expect, state),
                violations=[replace(v, detail=str(world.aliases.outward(v.detail))) for v in mine + stepwise],
                autojoin_acted=acted,
                invocations=len(world.cloud.invocations) - before,
                functions=dict(Counter(i.function for i in world.cloud.invocations[before:])),
                changes=dict(
                    Counter(
                        f"{c.function}:{c.operation}"
                        for c in world.cloud.calls[calls_before:]
                        if c.function and not c.operation.startswith(_READS)
                    )
                ),
                error=error,
                unsurvivable=unsurvivable,
            )
            results.append(result)
            prev = state
            if broken:
                break
        if not steps:
            with world.capture():
                world.advance_to(scenario.settle)
        broken_run = any(r.error and r.error.startswith("the local cloud failed") for r in results)
        final = world.observe()
        if progress:
            progress(len(steps), len(steps), "checking invariants")
        violations = lifecycle_violations(world.new_lifecycle(), world.groups.values())
        if not broken_run:
            violations += unfinished_violations(final)
        decisions = [i.result for i in world.new_invocations()]
        violations += token_violations(
            world.new_calls(), world.new_invocations(), world.log_lines(), decisions
        )
        violations = [replace(v, detail=str(world.aliases.outward(v.detail))) for v in violations]
        return SimulationResult(
            name=loaded.name,
            path=str(loaded.path),
            seed=the_seed,
            initial=initial,
            steps=results,
            final=final,
            final_checks=check(scenario.expect, final),
            violations=violations,
            faults=list(injected.log) if injected is not None else [],
        )
