"""The scenario format: an initial cluster, then a timeline of steps, each with optional expectations.

    name: seed-2-2-1-survives-az-loss
    cluster: {zones: [us-east-1a, us-east-1b, us-east-1c], managers: {count: 5}, workers: {count: 3}}
    steps:
      - at: 60
        action: az_outage
        zone: us-east-1a
        expect: {has_leader: true, managers: 3}

See docs/scenarios.md for every action and expectation. Loading validates everything up front (zones,
groups, selectors, event files, times), so a bad scenario fails before anything runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autojoin.domain.model import LifecycleResult, Role
from autojoin.errors import BadInput
from autojoin.localcloud.faults import FaultPlan
from autojoin.scenario.spec import ClusterSpec, describe, load_yaml, parse_state

Action = Literal[
    "scale",
    "terminate",
    "crash",
    "az_outage",
    "az_recover",
    "instance_refresh",
    "rotate_tokens",
    "deliver",
    "wait",
    "set_zones",
]
ACTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {  # action -> (required, optional) fields
    "scale": (frozenset({"group", "desired"}), frozenset()),
    "terminate": (frozenset({"target"}), frozenset({"decrement"})),
    "crash": (frozenset({"target"}), frozenset()),
    "az_outage": (frozenset({"zone"}), frozenset()),
    "az_recover": (frozenset({"zone"}), frozenset()),
    "instance_refresh": (frozenset({"group"}), frozenset({"preferences"})),
    "rotate_tokens": (frozenset({"role"}), frozenset()),
    "deliver": (frozenset({"event"}), frozenset({"duplicate", "delay"})),
    "wait": (frozenset({"seconds"}), frozenset()),
    "set_zones": (frozenset({"group", "zones"}), frozenset()),
}
PARAMS = frozenset().union(*(r | o for r, o in ACTIONS.values()))
# actions that are the world's doing, not autojoin's: quorum lost right after one is a fact, not a fault
DISRUPTIONS = frozenset({"crash", "az_outage", "terminate"})

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_AT = re.compile(r"^(\+)?\s*(\d+(?:\.\d+)?)\s*([smh]?)$")
_SELECTOR = re.compile(
    r"^(?P<role>manager|worker)s?(?:\s+in\s+(?P<zone>[a-z0-9-]+))?(?:\s*#(?P<index>\d+))?$"
)


@dataclass(frozen=True)
class Selector:
    """Which instance a terminate/crash step means. ``index`` counts from 1 among the matches."""

    role: Role | None = None
    zone: str | None = None
    index: int = 1
    instance_id: str | None = None
    leader: bool = False

    def __str__(self) -> str:
        if self.instance_id:
            return self.instance_id
        if self.leader:
            return "the leader"
        s = self.role.value if self.role else "instance"
        if self.zone:
            s += f" in {self.zone}"
        return s + (f" #{self.index}" if self.index != 1 else "")


def parse_selector(text: str) -> Selector:
    t = " ".join(text.strip().lower().split())
    if t == "leader":
        return Selector(leader=True)
    if re.fullmatch(r"i-[0-9a-f]{8,17}", t):
        return Selector(instance_id=t)
    m = _SELECTOR.match(t)
    if m is None:
        raise ValueError(
            f"cannot read the instance selector {text!r} (try 'manager in us-east-1a', 'worker #2', "
            "'leader' or an instance id)"
        )
    index = int(m["index"]) if m["index"] else 1
    if index < 1:
        raise ValueError(f"selector {text!r}: # counts from 1")
    return Selector(role=Role(m["role"]), zone=m["zone"], index=index)


def parse_at(value: object) -> tuple[bool, float]:
    """``at:`` -> (relative, seconds). Numbers are absolute seconds; ``+90s`` is relative."""
    if isinstance(value, bool):
        raise ValueError(f"at: {value!r} is not a time")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"at: {value} is negative")
        return False, float(value)
    if isinstance(value, str):
        m = _AT.match(value.strip())
        if m:
            return bool(m[1]), float(m[2]) * _UNITS[m[3]]
    raise ValueError(f"at: cannot read {value!r} (seconds like 90, or relative like +90s, +2m)")


class Expect(BaseModel):
    """What must hold after a step (each key optional)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    has_leader: bool | None = None
    managers: int | None = Field(default=None, ge=0)  # healthy (reachable) managers in the swarm
    voters: int | None = Field(default=None, ge=0)  # managers in Raft's member list, Down ones included
    workers: int | None = Field(default=None, ge=0)  # ready workers in the swarm
    layout: dict[str, int] | None = None  # healthy managers per AZ (unlisted AZs: 0)
    tolerates_zone_failures: int | None = Field(default=None, ge=0)
    tolerates_node_failures: int | None = Field(default=None, ge=0)
    lifecycle: dict[LifecycleResult, int] | None = None  # completions so far, by result
    in_service: dict[Role, int] | None = None  # InService instances per group
    pending_actions: int | None = Field(default=None, ge=0)  # lifecycle actions still waiting

    def items(self) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in self.model_dump(exclude_none=True).items()]


class RefreshPreferences(BaseModel):
    """StartInstanceRefresh's Preferences (API Reference, RefreshPreferences), by AWS's names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    MinHealthyPercentage: int | None = Field(default=None, ge=0, le=100)
    MaxHealthyPercentage: int | None = Field(default=None, ge=100, le=200)
    SkipMatching: bool | None = None
    ScaleInProtectedInstances: Literal["Refresh", "Ignore", "Wait"] | None = None
    CheckpointPercentages: list[int] | None = None
    CheckpointDelay: int | None = Field(default=None, ge=0, le=172800)

    @field_validator("CheckpointPercentages")
    @classmethod
    def _checkpoints(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or v != sorted(set(v)) or not all(1 <= p <= 100 for p in v)):
            raise ValueError("CheckpointPercentages must be increasing percentages from 1 to 100")
        return v

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Action
    at: float | int | str | None = None
    note: str | None = None
    group: str | None = None
    desired: int | None = Field(default=None, ge=0)
    target: str | None = None
    decrement: bool = True
    zone: str | None = None
    role: Role | None = None
    event: str | None = None
    duplicate: bool = False
    delay: float = Field(default=0.0, ge=0)
    seconds: float | None = Field(default=None, ge=0)
    preferences: RefreshPreferences | None = None
    zones: tuple[str, ...] | None = None  # set_zones: the AZs (subnets) the group spans from now on
    expect: Expect | None = None

    @field_validator("at")
    @classmethod
    def _at(cls, v: object) -> object:
        if v is not None:
            parse_at(v)
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        if v is not None:
            parse_selector(v)
        return v

    @model_validator(mode="after")
    def _fields(self) -> Step:
        required, optional = ACTIONS[self.action]
        given = {k for k in PARAMS if k in self.model_fields_set}
        missing = sorted(required - given)
        if missing:
            raise ValueError(f"action {self.action} needs {', '.join(missing)}")
        extra = sorted(given - required - optional)
        if extra:
            raise ValueError(f"action {self.action} does not take {', '.join(extra)}")
        return self

    @property
    def selector(self) -> Selector:
        assert self.target is not None
        return parse_selector(self.target)

    def describe(self) -> str:
        a = self.action
        if a == "scale":
            return f"scale {self.group} to {self.desired}"
        if a in {"terminate", "crash"}:
            extra = "" if a == "crash" or self.decrement else " (replace)"
            return f"{a} {self.selector}{extra}"
        if a in {"az_outage", "az_recover"}:
            return f"{a.replace('_', ' ')} {self.zone}"
        if a == "instance_refresh":
            return f"instance refresh of {self.group}"
        if a == "set_zones":
            return f"{self.group} spans {', '.join(self.zones or ())}"
        if a == "rotate_tokens":
            return f"rotate the {self.role.value if self.role else '?'} token"
        if a == "deliver":
            mods = [m for m, on in (("twice", self.duplicate), (f"{self.delay:g}s late", self.delay)) if on]
            return f"deliver {Path(self.event or '').name}" + (f" ({', '.join(mods)})" if mods else "")
        return f"wait {self.seconds:g}s"


@dataclass(frozen=True)
class TimedStep:
    index: int  # 1-based
    at: float  # absolute simulated seconds since the scenario started
    step: Step
    group_role: Role | None  # scale / instance_refresh: which group
    event: dict[str, Any] | None  # deliver: the event, read at load time


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    description: str | None = None
    seed: int = 0
    settle: float = Field(default=3600.0, ge=0)  # seconds run after the last step before final checks
    cluster: ClusterSpec = ClusterSpec()
    steps: tuple[Step, ...] = ()
    expect: Expect | None = None  # checked at the very end, after settling
    faults: FaultPlan | None = None  # fault injection (localcloud/faults.py); --throttle etc. override

    @field_validator("cluster", mode="before")
    @classmethod
    def _cluster(cls, v: object) -> object:
        return {} if v is None else v


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    path: Path
    steps: tuple[TimedStep, ...]

    @property
    def name(self) -> str:
        return self.scenario.name or self.path.stem


def _resolve_group(name: str, spec: ClusterSpec, where: str) -> Role:
    key = name.strip().lower()
    for role in Role:
        if key in {role.value, f"{role.value}s", spec.group_name(role).lower()}:
            return role
    raise BadInput(
        f"{where}: group {name!r} does not exist (use manager, worker, "
        f"{spec.group_name(Role.MANAGER)} or {spec.group_name(Role.WORKER)})"
    )


def _check_zone(zone: str, spec: ClusterSpec, where: str) -> None:
    if zone not in spec.zones:
        raise BadInput(f"{where}: zone {zone} does not exist (zones: {', '.join(spec.zones)})")


def _read_event(ref: str, base: Path, where: str) -> dict[str, Any]:
    candidates = [base / ref, Path(ref)]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise BadInput(f"{where}: event file {ref} not found (looked beside the scenario and in .)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise BadInput(f"{where}: event file {ref} is not JSON") from None
    if not isinstance(data, dict):
        raise BadInput(f"{where}: event file {ref} is not a JSON object")
    return data


def _check_expect(expect: Expect, spec: ClusterSpec, where: str) -> None:
    for zone in expect.layout or {}:
        _check_zone(zone, spec, f"{where}.expect.layout")


def parse_scenario(data: object, path: Path) -> LoadedScenario:
    what = f"scenario {path}"
    if not isinstance(data, Mapping):
        raise BadInput(f"{what}: expected a mapping with cluster and steps, got {type(data).__name__}")
    data = dict(data)
    cluster = parse_state(data.pop("cluster", None), f"{what}: cluster")
    try:
        scenario = Scenario.model_validate({**data, "cluster": cluster})
    except ValidationError as exc:
        raise BadInput(describe(exc, what)) from None
    spec = scenario.cluster
    timed: list[TimedStep] = []
    now = 0.0
    for i, step in enumerate(scenario.steps, start=1):
        where = f"{what}: steps.{i - 1} ({step.action})"
        if step.at is not None:
            relative, secs = parse_at(step.at)
            at = now + secs if relative else secs
            if at < now:
                raise BadInput(f"{where}: at {step.at} is before the previous step ({now:g}s)")
            now = at
        role: Role | None = None
        if step.group is not None:
            role = _resolve_group(step.group, spec, where)
        if step.zone is not None:
            _check_zone(step.zone, spec, where)
        for zone in step.zones or ():
            _check_zone(zone, spec, where)
        if step.zones is not None and (not step.zones or len(set(step.zones)) != len(step.zones)):
            raise BadInput(f"{where}: zones must name at least one AZ, each once")
        if step.target is not None and step.selector.zone is not None:
            _check_zone(step.selector.zone, spec, where)
        event = _read_event(step.event, path.parent, where) if step.event is not None else None
        if step.expect is not None:
            _check_expect(step.expect, spec, where)
        timed.append(TimedStep(i, now, step, role, event))
        if step.action == "wait":
            now += step.seconds or 0.0
    if scenario.expect is not None:
        _check_expect(scenario.expect, spec, f"{what}: expect")
    return LoadedScenario(scenario, path, tuple(timed))


def load_scenario(path: Path) -> LoadedScenario:
    return parse_scenario(load_yaml(path, "scenario"), path)
