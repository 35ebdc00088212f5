"""The STATE file format: a cluster as it stands (groups, instances, swarm, hook timeouts).

``autojoin replay --state`` reads one; a scenario's ``cluster:`` block is the same format. Every field
has a default, so ``{}`` is the default cluster: "demo" in us-east-1, 3 managers 1-1-1 and 2 workers
over us-east-1a/b/c, the swarm formed, launch and terminate hooks with 900 s heartbeat timeouts.

Instances are given either one by one (``instances:``) or by count (``count:``, balanced over the
group's zones the way Auto Scaling balances, or ``layout:`` per zone). Generated ids are deterministic
(managers ``i-00000000000000101``..., workers ``i-00000000000000201``...) and the shipped events use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autojoin.domain.model import Role
from autojoin.errors import BadInput

DEFAULT_ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
ACCOUNT = "123456789012"
LifecycleState = Literal["InService", "Pending:Wait", "Terminating:Wait", "Standby"]
_ID_BASE = {Role.MANAGER: 100, Role.WORKER: 200}


def instance_id_for(role: Role, n: int) -> str:
    """The n-th (1-based) generated instance id of a role: ``i-00000000000000101`` for manager 1."""
    if n < 100:
        return f"i-{_ID_BASE[role] + n:017d}"
    return f"i-{_ID_BASE[role] * 1000 + n:017d}"  # 100 and beyond: i-00000000000100100 ...


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InstanceSpec(Spec):
    """One instance of a group."""

    id: str = Field(pattern=r"^i-[0-9a-f]{8,17}$")
    az: str
    healthy: bool = True  # False: the machine has crashed (the swarm shows it Down after a delay)
    lifecycle_state: LifecycleState = "InService"
    in_cluster: bool | None = None  # default: InService and healthy-or-not, when the cluster exists


class GroupSpec(Spec):
    """An Auto Scaling group of one role: its name, zones and instances."""

    name: str | None = None  # default "<cluster>-manager" / "<cluster>-worker" (the template's names)
    count: int | None = Field(default=None, ge=0)
    layout: dict[str, int] | None = None  # zone -> instances (an explicit, possibly unbalanced layout)
    instances: tuple[InstanceSpec, ...] | None = None
    max_size: int | None = Field(default=None, ge=0)
    zones: tuple[str, ...] | None = None  # the AZs (subnets) the group spans; default: every zone

    @model_validator(mode="after")
    def _one_way(self) -> GroupSpec:
        given = [k for k in ("count", "layout", "instances") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of count, layout, instances (got {', '.join(given)})")
        if self.layout is not None and any(v < 0 for v in self.layout.values()):
            raise ValueError("a layout count cannot be negative")
        return self


class HookTimeouts(Spec):
    launch: int = Field(default=900, ge=30, le=7200)
    terminate: int = Field(default=900, ge=30, le=7200)


class ClusterSpec(Spec):
    """A cluster as it stands: the STATE file, and a scenario's ``cluster:`` block."""

    region: str = "us-east-1"
    zones: tuple[str, ...] = DEFAULT_ZONES
    cluster: str = Field(default="demo", min_length=1)
    exists: bool = True  # the swarm has been formed from the groups' InService instances
    hook_timeouts: HookTimeouts = HookTimeouts()
    managers: GroupSpec = GroupSpec(count=3)
    workers: GroupSpec = GroupSpec(count=2)
    # Secret ids the events use for the two token secrets; replay maps them to the stack's real ARNs.
    secrets: dict[Role, str] = Field(default_factory=dict)
    # template parameters given to the stack as they are (e.g. DryRun: "true")
    parameters: dict[str, str] = Field(default_factory=dict)

    @field_validator("managers", "workers", mode="before")
    @classmethod
    def _count_shorthand(cls, v: object) -> object:
        return {"count": v} if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _check(self) -> ClusterSpec:
        if not self.zones:
            raise ValueError("zones: at least one AZ is needed")
        if len(set(self.zones)) != len(self.zones):
            raise ValueError("zones: an AZ is listed twice")
        for role in Role:
            g = self.group(role)
            key = _KEY[role]
            for z in g.zones or ():
                if z not in self.zones:
                    raise ValueError(f"{key}.zones: zone {z} does not exist (zones: {', '.join(self.zones)})")
            if g.zones is not None and (not g.zones or len(set(g.zones)) != len(g.zones)):
                raise ValueError(f"{key}.zones: name at least one AZ, each once")
            for z in g.layout or {}:
                if z not in self.group_zones(role):
                    raise ValueError(
                        f"{key}.layout: zone {z} does not exist (zones: {', '.join(self.zones)})"
                    )
            seen: set[str] = set()
            for inst in g.instances or ():
                if inst.az not in self.group_zones(role):
                    raise ValueError(
                        f"{key}.instances: {inst.id} is in {inst.az}, a zone that does not exist"
                    )
                if inst.id in seen:
                    raise ValueError(f"{key}.instances: {inst.id} is listed twice")
                seen.add(inst.id)
        ids = [i.id for r in Role for i in self.instances(r)]
        if len(set(ids)) != len(ids):
            raise ValueError("an instance id appears in both groups")
        if self.group_name(Role.MANAGER) == self.group_name(Role.WORKER):
            raise ValueError("the manager and worker groups need different names")
        return self

    def group(self, role: Role) -> GroupSpec:
        return self.managers if role is Role.MANAGER else self.workers

    def group_name(self, role: Role) -> str:
        return self.group(role).name or f"{self.cluster}-{role.value}"

    def group_zones(self, role: Role) -> tuple[str, ...]:
        """The AZs the group spans: every zone (one SubnetIds parameter in the template) unless given."""
        return self.group(role).zones or self.zones

    def role_of_group(self, name: str) -> Role | None:
        return next((r for r in Role if self.group_name(r) == name), None)

    def instances(self, role: Role) -> tuple[InstanceSpec, ...]:
        """The group's instances, generated from count/layout when not listed."""
        g = self.group(role)
        if g.instances is not None:
            return g.instances
        zones = self.group_zones(role)
        if g.layout is not None:
            per_zone = [(z, g.layout.get(z, 0)) for z in zones]
            order = [z for z, c in per_zone for _ in range(c)]
        else:
            n = g.count or 0
            order = [zones[i % len(zones)] for i in range(n)]  # Auto Scaling's balance: round robin
        return tuple(InstanceSpec(id=instance_id_for(role, k + 1), az=z) for k, z in enumerate(order))

    def dry_run(self) -> ClusterSpec:
        """The same cluster on a stack deployed with DryRun=true (the reconciler decides, changes nothing)."""
        return self.model_copy(update={"parameters": {**self.parameters, "DryRun": "true"}})

    def member(self, inst: InstanceSpec) -> bool:
        """Is this instance a swarm member in the seeded state?"""
        if inst.in_cluster is not None:
            return inst.in_cluster and self.exists
        return self.exists and inst.lifecycle_state in {"InService", "Terminating:Wait", "Standby"}

    def secret_alias(self, role: Role) -> str:
        return self.secrets.get(role) or (
            f"arn:aws:secretsmanager:{self.region}:{ACCOUNT}:secret:{self.cluster}/autojoin/"
            f"{role.value}-token-{'Ab12Cd' if role is Role.MANAGER else 'Ef34Gh'}"
        )


_KEY = {Role.MANAGER: "managers", Role.WORKER: "workers"}


def _location(loc: tuple[int | str, ...]) -> str:
    # a key with a line break or a control character in it is quoted: the message stays one line
    return ".".join(str(p) if str(p).isprintable() else repr(p) for p in loc) or "(top level)"


def describe(exc: ValidationError, what: str) -> str:
    """One line for the first problem pydantic found."""
    err = exc.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    loc = _location(tuple(err["loc"]))
    if err["type"] == "extra_forbidden":
        return f"{what}: unknown field {loc}"
    if not err["loc"]:
        return f"{what}: {msg}"
    return f"{what}: {loc}: {msg}"


def load_yaml(path: Path, what: str) -> Any:
    """Read a YAML file, turning every failure into BadInput with a one-line reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{what} {path}: cannot read ({type(exc).__name__})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise BadInput(f"{what} {path}: not valid YAML{where}") from None


def parse_state(data: object, what: str = "state") -> ClusterSpec:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise BadInput(f"{what}: expected a mapping, got {type(data).__name__}")
    try:
        return ClusterSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise BadInput(describe(exc, what)) from None


def load_state(path: Path | None) -> ClusterSpec:
    """The STATE file at ``path``, or the default cluster when None."""
    if path is None:
        return ClusterSpec()
    return parse_state(load_yaml(path, "state"), f"state {path}")
