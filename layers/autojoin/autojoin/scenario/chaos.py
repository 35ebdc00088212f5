"""Chaos runs: seeded random timelines on the local cloud, each checked against every invariant.

``generate(seed, index, faults)`` makes one timeline as a scenario document (the scenario format, with a
``faults:`` block), so a failing one is saved and re-run with ``autojoin simulate FILE`` as it is.
``run(...)`` simulates N of them and keeps the failures.

A timeline: a healthy cluster (3 or 5 managers balanced over three AZs, 0-4 workers), then 3-7 steps a
few minutes apart drawn from scale-out/-in of both groups, a crash (the leader, or a worker), a user's
terminate, an AZ outage (recovered a few steps later), an instance refresh, a token rotation, a wait.
The world's own blows are kept survivable — at most one AZ down, one disruption between two recoveries,
managers never below 3 — because a swarm that loses quorum to the world is not autojoin's to save. Every
zone is recovered before the end; then the run settles for half an hour and must end consistent: the leader
there, as many healthy managers and workers as the groups' desired capacity, no lifecycle action waiting
(the ``expect:`` the timeline carries), and no violation (scenario/invariants.py) on the way.

Determinism: everything is drawn from ``random.Random(f"{seed}:{index}")``; the fault plan's seed and the
local cloud's seed are fixed in the document.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autojoin.localcloud.faults import INJECTED_MARK, KILLED_MARK, FaultPlan
from autojoin.scenario.model import parse_scenario

ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
_SKIPPED = (
    "InService instance(s) match",
    "is not an InService instance",
    "has no leader to select",
    # a user's second StartInstanceRefresh while the group's first still runs: AWS refuses it
    # (RefreshInProgress); replacing seven managers one at a time can outlast the gap between two steps
    "An Instance Refresh is already in progress",
    # a step the world refused because AWS failed it (a rotation step hit by an injected 5xx, or its
    # function killed): Secrets Manager marks that rotation failed; what autojoin did about it is what
    # the invariants check
    INJECTED_MARK,
    KILLED_MARK,
)


def generate(seed: int, index: int, faults: FaultPlan | None = None) -> dict[str, Any]:
    """Timeline ``index`` of chaos run ``seed`` as a scenario document."""
    rng = random.Random(f"{seed}:{index}")  # noqa: S311 - a reproducible simulation
    start_managers = managers = rng.choice((3, 3, 5))
    start_workers = workers = rng.randint(0, 4)
    down: str | None = None
    disrupted = False  # a crash/terminate/outage happened and nothing has been given time since
    steps: list[dict[str, Any]] = []
    for _ in range(rng.randint(3, 7)):
        at = f"+{rng.randint(2, 12)}m"
        choices = ["scale_m", "scale_w", "refresh", "rotate", "wait"]
        if not disrupted and down is None:
            choices += ["crash", "crash", "terminate", "outage"]
        if down is not None:
            choices += ["recover", "recover"]
        pick = rng.choice(choices)
        step: dict[str, Any] = {"at": at}
        if pick == "scale_m":
            managers = rng.choice([m for m in (3, 5, 7) if m != managers])
            step |= {"action": "scale", "group": "manager", "desired": managers}
        elif pick == "scale_w":
            workers = rng.choice([w for w in range(6) if w != workers])
            step |= {"action": "scale", "group": "worker", "desired": workers}
        elif pick == "refresh":
            step |= {"action": "instance_refresh", "group": rng.choice(("manager", "worker"))}
        elif pick == "rotate":
            step |= {"action": "rotate_tokens", "role": rng.choice(("manager", "worker"))}
        elif pick == "wait":
            step |= {"action": "wait", "seconds": rng.choice((60, 300, 900))}
        elif pick == "crash":
            target = "leader" if workers == 0 or rng.random() < 0.5 else "worker"
            step |= {"action": "crash", "target": target}
            disrupted = True
        elif pick == "terminate":
            role = "worker" if workers and rng.random() < 0.5 else "manager"
            step |= {"action": "terminate", "target": f"{role} #1", "decrement": False}
            disrupted = True
        elif pick == "outage":
            down = rng.choice(ZONES)
            step |= {"action": "az_outage", "zone": down}
            disrupted = True
        elif pick == "recover":
            assert down is not None
            step |= {"action": "az_recover", "zone": down}
            down = None
        if pick in {"wait", "recover", "scale_m", "scale_w"} and down is None:
            disrupted = False  # the previous blow has had its window (and its replacement) by now
        steps.append(step)
    if down is not None:
        steps.append({"at": "+5m", "action": "az_recover", "zone": down})
    doc: dict[str, Any] = {
        "name": f"chaos-{seed}-{index}",
        "description": "a generated chaos timeline (autojoin simulate --chaos); re-run it as it is",
        "seed": rng.randrange(1 << 16),
        "settle": 1800,
        "cluster": {
            "cluster": "demo",
            "zones": list(ZONES),
            "managers": start_managers,
            "workers": start_workers,
        },
        "steps": steps,
        "expect": {"has_leader": True, "managers": managers, "workers": workers, "pending_actions": 0},
    }
    if faults is not None and faults.active:
        doc["faults"] = {
            **faults.model_dump(mode="json", exclude_defaults=True),
            "seed": rng.randrange(1 << 16),
        }
    return doc


@dataclass
class Outcome:
    index: int
    document: dict[str, Any]
    passed: bool
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    saved: Path | None = None
    unsurvivable: list[str] = field(default_factory=list)  # why: set only when every problem came after it

    @property
    def failed(self) -> bool:
        """Problems that a blow no guard survives does not explain (scenario/blows.py)."""
        return not self.passed and not self.unsurvivable


def _skipped(error: str) -> bool:
    """A step that did not happen for a reason that is nobody's fault (no target; AWS refused it)."""
    return any(s in error for s in _SKIPPED)


def problems_of(result: Any) -> tuple[list[str], list[str]]:
    """(what went wrong, steps that did not happen: no target for them, or AWS refused them) of one
    SimulationResult."""
    problems = [str(v) for v in result.all_violations]
    problems += [f"step {i}: {c}" for i, c in result.failed_checks]
    skipped: list[str] = []
    for i, error in result.errors:
        (skipped if _skipped(error) else problems).append(f"step {i}: {error}")
    return problems, skipped


def unsurvivable_of(result: Any) -> list[str]:
    """The blows no guard survives (scenario/blows.py) when they explain every problem of ``result``:
    each problem comes at or after the first of them (at the end counts as after). Otherwise []."""
    blows = result.unsurvivable
    if not blows:
        return []
    first = min(step for step, _ in blows)
    steps = [v.step for v in result.all_violations]
    steps += [step for step, _ in result.failed_checks]
    steps += [step for step, error in result.errors if not _skipped(error)]
    if any(step is not None and step < first for step in steps):
        return []
    return [f"step {step}: {why}" for step, why in blows]


def run(
    count: int,
    seed: int,
    faults: FaultPlan | None,
    *,
    template: Path | None = None,
    save_dir: Path | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    first: int = 0,
) -> list[Outcome]:
    """Timelines ``first`` .. ``first + count - 1`` of run ``seed``."""
    from autojoin.scenario.runner import simulate

    out: list[Outcome] = []
    for index in range(first, first + count):
        doc = generate(seed, index, faults)
        loaded = parse_scenario(doc, Path(f"{doc['name']}.yaml"))
        result = simulate(loaded, template=template)
        problems, skipped = problems_of(result)
        outcome = Outcome(index, doc, not problems, problems, skipped, _count(result.faults))
        if problems:
            outcome.unsurvivable = unsurvivable_of(result)
        if problems and save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            outcome.saved = save_dir / f"{doc['name']}.yaml"
            head = [f"UNSURVIVABLE {why}" for why in outcome.unsurvivable] + problems
            outcome.saved.write_text(to_yaml(doc, head), encoding="utf-8")
        out.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return out


def run_parallel(
    count: int,
    seed: int,
    faults: FaultPlan | None,
    *,
    jobs: int,
    template: Path | None = None,
    save_dir: Path | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """:func:`run` over ``jobs`` worker processes (forked, so each starts warm), one timeline a task;
    ``on_outcome`` is called in this process as each finishes. The outcomes are those of :func:`run`
    (each timeline is seeded by its own index), returned in index order."""
    if jobs <= 1 or count <= 1:
        return run(count, seed, faults, template=template, save_dir=save_dir, on_outcome=on_outcome)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    out: list[Outcome] = []
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(jobs, count), mp_context=context) as pool:
        futures = [
            pool.submit(run, 1, seed, faults, template=template, save_dir=save_dir, first=index)
            for index in range(count)
        ]
        try:
            for future in as_completed(futures):
                for outcome in future.result():
                    out.append(outcome)
                    if on_outcome is not None:
                        on_outcome(outcome)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return sorted(out, key=lambda o: o.index)


def _count(log: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in log:
        kind = line.split(" ", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def to_yaml(doc: dict[str, Any], problems: list[str] | None = None) -> str:
    head = "".join(f"# {p}\n" for p in problems or ())
    return head + yaml.safe_dump(doc, sort_keys=False)


def iter_documents(count: int, seed: int, faults: FaultPlan | None = None) -> Iterator[dict[str, Any]]:
    for i in range(count):
        yield generate(seed, i, faults)
