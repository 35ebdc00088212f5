"""One chaos timeline in one arm (autojoin, or plain Auto Scaling), sampled over simulated time.

The resilience benchmark (scripts/bench_resilience.py) runs every timeline of ``scenario/chaos.py`` twice
from the same document: ``removal=True`` (the stack as the template makes it) and ``removal=False``
(scenario/baseline.py: plain Auto Scaling, same launch path). Both arms apply the same steps at the same
simulated times through the scenario runner's own step code on the same World; only the stack differs.

Every ``sample_every`` simulated seconds (and once at the start) a sample records:

- ``quorum``: the swarm has a leader — the simulated swarm elects one only while a majority of ALL Raft
  voters (Down managers never removed included) is alive and connected;
- ``survives_az``: with that quorum, losing any one more AZ still leaves a majority of all voters
  (``ClusterState.zone_failures_now >= 1``);
- ``down_voters``: managers still in the swarm's member list that are not healthy (machine gone, or out
  of the swarm and never removed);
- ``gap``: healthy managers out of place — how many would have to move for the healthy managers'
  layout to match the optimal layout of as many managers over the AZs that are up
  (``domain.placement.optimal_layout``; the sorted count vectors' L1 distance / 2).

A quorum loss starts at a sample that has no leader after one that had. It is the world's when a world
blow (crash, a user's terminate, an AZ outage) was applied since the previous sample; otherwise it is
caused by scaling actions (a scale-in, an instance refresh, a rebalance, a replacement — what the groups
did, and in the autojoin arm whatever autojoin did on top). ``after`` names the last step before it.

``unsurvivable``: a world blow that even the optimal layout of the group's desired managers (no Down
voter) would not survive — more managers lost at once than Raft tolerates. The chaos generator keeps its
blows survivable, so this should stay 0; a timeline it flags is left out of BOTH arms' figures.

A tool of the benchmark: never shipped to Lambda (not in the layer's LAYER_MODULES).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autojoin.domain.model import Role
from autojoin.domain.placement import optimal_layout
from autojoin.domain.quorum import fault_tolerance
from autojoin.errors import PlacementError
from autojoin.scenario.model import DISRUPTIONS, parse_scenario
from autojoin.scenario.observe import ClusterState

ARMS = ("plain", "autojoin")


@dataclass(frozen=True)
class Sample:
    at: float
    quorum: bool
    survives_az: bool
    down_voters: int
    gap: int
    voters: int
    healthy: int


@dataclass
class ArmRun:
    arm: str
    samples: list[Sample] = field(default_factory=list)
    losses: list[dict[str, Any]] = field(default_factory=list)  # {at, cause: scaling|world, after}
    skipped: list[str] = field(default_factory=list)  # steps that found no target or were refused
    unsurvivable: list[str] = field(default_factory=list)  # world blows no layout would survive
    error: str | None = None  # the local cloud failed: the timeline is left out of both arms
    cpu_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["samples"] = [
            [s.at, int(s.quorum), int(s.survives_az), s.down_voters, s.gap, s.voters, s.healthy]
            for s in self.samples
        ]
        return out


SAMPLE_FIELDS = ("at", "quorum", "survives_az", "down_voters", "gap", "voters", "healthy")


def gap_to_optimal(state: ClusterState) -> int:
    """Healthy managers out of place against the optimal layout of as many over the AZs that are up."""
    layout = state.layout
    n = sum(layout.values())
    if n == 0:
        return 0
    try:
        best = optimal_layout(n, state.zones, impaired=state.down_zones)
    except PlacementError:
        return 0  # no AZ up: nothing can be placed, nothing is out of place
    have = sorted(layout.values(), reverse=True)
    want = sorted(best.values(), reverse=True)
    return sum(abs(a - b) for a, b in zip(have, want, strict=True)) // 2


def sample(state: ClusterState) -> Sample:
    return Sample(
        at=state.at,
        quorum=state.has_leader,
        survives_az=state.has_leader and state.zone_failures_now >= 1,
        down_voters=state.voters - state.managers,
        gap=gap_to_optimal(state),
        voters=state.voters,
        healthy=state.managers,
    )


def _unsurvivable(action: str, target: str, zone: str | None, desired: int, state: ClusterState) -> bool:
    """Would the best the groups could have (the optimal layout of ``desired`` managers over the AZs up,
    no Down voter) lose quorum to this blow alone?"""
    if desired < 1:
        return False
    up = [z for z in state.zones if z not in state.down_zones]
    if action == "az_outage":
        try:
            best = optimal_layout(desired, up) if up else {}
        except PlacementError:
            return True
        lost = best.get(zone or "", 0)
    else:
        lost = 0 if target.startswith("worker") else 1
    return lost > fault_tolerance(desired)


def run_arm(
    document: dict[str, Any], *, removal: bool, sample_every: float = 60.0, template: Path | None = None
) -> ArmRun:
    """Run the scenario ``document`` (a chaos timeline) in one arm; samples, quorum losses, CPU time."""
    from autojoin.scenario.runner import _Runner  # the scenario runner's own step code
    from autojoin.scenario.world import World

    arm = ArmRun("autojoin" if removal else "plain")
    cpu0 = time.process_time()
    loaded = parse_scenario(document, Path(f"{document.get('name', 'timeline')}.yaml"))
    scenario = loaded.scenario
    steps = loaded.steps
    blows: list[float] = []  # when a world blow was applied
    applied: list[tuple[float, str]] = []  # (when, what) of every step applied
    with World(scenario.cluster, seed=scenario.seed, template=template, removal=removal) as world:
        runner = _Runner(world)
        managers = world.groups[Role.MANAGER]
        arm.samples.append(sample(world.observe()))
        next_at = sample_every

        def run_to(t: float) -> None:
            nonlocal next_at
            while next_at <= t:
                world.advance_to(next_at)
                s = sample(world.observe())
                prev = arm.samples[-1]
                if prev.quorum and not s.quorum:
                    world_blow = any(prev.at <= b < s.at for b in blows)
                    after = next((what for when, what in reversed(applied) if when < s.at), "")
                    arm.losses.append(
                        {"at": s.at, "cause": "world" if world_blow else "scaling", "after": after}
                    )
                arm.samples.append(s)
                next_at += sample_every
            world.advance_to(t)

        end = (steps[-1].at if steps else 0.0) + scenario.settle
        try:
            with world.capture():
                for ts in steps:
                    run_to(ts.at)
                    action = ts.step.action
                    if action == "wait":
                        continue  # time runs on to the next step, sampled like any other
                    if action in DISRUPTIONS:
                        desired = int(world.cloud.engine.group(managers).desired_capacity or 0)
                        target = str(ts.step.target or "")
                        if _unsurvivable(action, target, ts.step.zone, desired, world.observe()):
                            arm.unsurvivable.append(f"{ts.at:.0f}s {ts.step.describe()}")
                    try:
                        runner.apply(ts)
                    except Exception as exc:  # no target for it, or AWS refused it: the same in both arms
                        arm.skipped.append(f"step {ts.index}: {type(exc).__name__}: {exc}")
                        continue
                    applied.append((ts.at, ts.step.describe()))
                    if action in DISRUPTIONS:
                        blows.append(ts.at)
                run_to(end)
        except Exception as exc:  # the simulation itself failed
            arm.error = f"{type(exc).__name__}: {exc}"
    arm.cpu_seconds = time.process_time() - cpu0
    return arm


def run_timeline(job: tuple[int, int, float, float | None]) -> dict[str, Any]:
    """Timeline ``index`` of run ``seed`` in both arms (one worker process, one local cloud at a time)."""
    seed, index, every, settle = job
    from autojoin.scenario.chaos import generate

    doc = generate(seed, index)
    if settle is not None:
        doc["settle"] = settle
    arms = {}
    for arm in ARMS:
        run = run_arm(doc, removal=arm == "autojoin", sample_every=every)
        arms[arm] = run.to_json()
    return {"index": index, "name": doc["name"], "steps": [_describe(s) for s in doc["steps"]], "arms": arms}


def _describe(step: dict[str, Any]) -> str:
    rest = " ".join(f"{k}={v}" for k, v in step.items() if k not in {"at", "action"})
    return f"{step['at']} {step['action']} {rest}".strip()
