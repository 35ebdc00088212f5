"""A LocalCloud seeded from a ClusterSpec, with the aliases, observation and log capture replay and
simulate share.

Seeding places instances directly (no lifecycle event, no handler): what a STATE file describes already
happened (``LocalCloud.place_instance`` / ``open_action``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from autojoin.domain.model import ClusterView, Node, Role
from autojoin.errors import BadInput
from autojoin.ports import JoinTicket
from autojoin.scenario.observe import ClusterState, count_results, members_from_snapshot
from autojoin.scenario.spec import ClusterSpec, InstanceSpec

SWARM_PORT = 2377
_ID = re.compile(r"i-[0-9a-f]{8,17}")
_GROUP_ARN = re.compile(
    r"arn:aws:autoscaling:[^:]*:[0-9]*:autoScalingGroup:[^:]*:autoScalingGroupName/(?P<name>[A-Za-z0-9._-]+)"
)


@contextlib.contextmanager
def _instance_id_as(instance_id: str | None) -> Iterator[None]:
    """While open, the instance moto creates gets ``instance_id`` (moto draws its random id as before, so
    the seeded sequence of every other id stays the same)."""
    if instance_id is None:
        yield
        return
    if not _ID.fullmatch(instance_id):
        raise BadInput(f"{instance_id!r} is not an EC2 instance id")
    from moto.ec2.models import instances

    original = instances.random_instance_id  # type: ignore[attr-defined]

    def forced() -> str:
        original()
        return instance_id

    instances.random_instance_id = forced  # type: ignore[attr-defined]
    try:
        yield
    finally:
        instances.random_instance_id = original  # type: ignore[attr-defined]


TEMPLATE_VARIABLE = "AUTOJOIN_TEMPLATE"


def packaged_template() -> Path:
    """The project's template.yaml and handlers as shipped in the package (autojoin/project/)."""
    from importlib import resources

    return Path(str(resources.files("autojoin").joinpath("project/template.yaml")))


def find_template(template: Path | None) -> Path:
    """The SAM template to wire from: ``template`` (--template), else ``$AUTOJOIN_TEMPLATE``, else
    ``template.yaml`` in the current directory, else the copy shipped in the package."""
    if template is not None:
        where = "--template"
        path = template
    elif os.environ.get(TEMPLATE_VARIABLE):
        where = f"${TEMPLATE_VARIABLE}"
        path = Path(os.environ[TEMPLATE_VARIABLE])
    elif Path("template.yaml").is_file():
        return Path("template.yaml")
    else:
        where = "the package"
        path = packaged_template()
    if not path.is_file():
        raise BadInput(f"{path}: no such template (from {where})")
    return path


@dataclass
class Aliases:
    """Declared id (state, events) <-> the id the local cloud made."""

    to_real: dict[str, str] = field(default_factory=dict)

    def add(self, declared: str, real: str) -> None:
        if declared != real:
            self.to_real[declared] = real

    @property
    def to_declared(self) -> dict[str, str]:
        return {r: d for d, r in self.to_real.items()}

    def real(self, declared: str) -> str:
        return self.to_real.get(declared, declared)

    def declared(self, real: str) -> str:
        return self.to_declared.get(real, real)

    @staticmethod
    def _rewrite(value: Any, table: Mapping[str, str]) -> Any:
        if not table:
            return value
        if isinstance(value, Mapping):
            return {k: Aliases._rewrite(v, table) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [Aliases._rewrite(v, table) for v in value]
        if isinstance(value, str):
            for old in sorted(table, key=len, reverse=True):
                if old in value:
                    value = value.replace(old, table[old])
            return value
        return value

    def inward(self, value: Any) -> Any:
        return self._rewrite(value, self.to_real)

    def outward(self, value: Any) -> Any:
        return self._rewrite(value, self.to_declared)


class LogCapture:
    """Everything the handlers print (Powertools logs, EMF metrics) while the world runs."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
        for name in ("autojoin", ""):
            for h in logging.getLogger(name).handlers:
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                    swapped.append((h, h.setStream(self.buffer)))
        try:
            with contextlib.redirect_stdout(self.buffer), contextlib.redirect_stderr(self.buffer):
                yield
        finally:
            for h, old in swapped:
                h.setStream(old)

    @property
    def lines(self) -> list[str]:
        return self.buffer.getvalue().splitlines()


@dataclass
class Marks:
    """Where the records stood after seeding: what came before is not reported."""

    calls: int = 0
    invocations: int = 0
    lifecycle: int = 0
    deliveries: int = 0


class World:
    """``with World(spec, seed=0) as world``: a provisioned, seeded LocalCloud.

    ``removal=False`` runs the stack as plain Auto Scaling (scenario/baseline.py): AWS's default
    termination policy, no terminate hook, no guard, no reconciler, no dead-node cleanup; joins as usual."""

    def __init__(
        self, spec: ClusterSpec, *, seed: int = 0, template: Path | None = None, removal: bool = True
    ) -> None:
        from autojoin.localcloud import LocalCloud

        self.spec = spec
        self.seed = seed
        self.removal = removal
        self.template = find_template(template)
        self.cloud = LocalCloud(self.template, seed=seed, region=spec.region, zones=spec.zones)
        self.aliases = Aliases()
        self.logs = LogCapture()
        self.marks = Marks()
        self.groups: dict[Role, str] = {}
        self._order: dict[str, int] = {}

    # --- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> World:
        with self.logs.capturing():
            self.cloud.__enter__()
            try:
                self._provision()
                if not self.removal:
                    from autojoin.scenario.baseline import plain_auto_scaling

                    plain_auto_scaling(self.cloud, self.groups.values())
                self._seed()
                self.cloud.enable_schedules()  # the template's rate() rules: the reconciler's tick
            except BaseException:
                self.cloud.__exit__(None, None, None)
                raise
        self.mark()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.logs.capturing():
            self.cloud.__exit__(None, None, None)

    def capture(self) -> contextlib.AbstractContextManager[None]:
        """Wrap every call that may run a handler: what it prints goes to ``log_lines()``."""
        return self.logs.capturing()

    def mark(self) -> None:
        c = self.cloud
        self.marks = Marks(len(c.calls), len(c.invocations), len(c.lifecycle_results), len(c.deliveries))

    @property
    def start(self) -> Any:
        return self.cloud.start

    def elapsed(self) -> float:
        return (self.cloud.clock.now() - self.cloud.start).total_seconds()

    def advance_to(self, seconds: float) -> None:
        target = self.cloud.start + timedelta(seconds=seconds)
        if target > self.cloud.clock.now():
            self.cloud.clock.advance_to(target)
        else:
            self.cloud.clock.run_due()

    # --- provisioning and seeding ------------------------------------------------------------------

    def _provision(self) -> None:
        spec = self.spec
        stack = self.cloud.provision(
            cluster=spec.cluster,
            managers=0,
            workers=0,
            heartbeat_timeout=spec.hook_timeouts.launch,
            params=dict(spec.parameters),
            stack_name=spec.cluster,
        )
        self.stack = stack
        self.groups = {Role.MANAGER: stack.manager_group, Role.WORKER: stack.worker_group}
        for role, real in self.groups.items():
            if not real:
                raise BadInput(f"template {self.template} has no {role.value} group")
            self.aliases.add(spec.group_name(role), real)
        for role in Role:
            secret = self.stack.physical.get(
                "ManagerTokenSecret" if role is Role.MANAGER else "WorkerTokenSecret", {}
            ).get("Ref")
            if isinstance(secret, str):
                self.aliases.add(spec.secret_alias(role), secret)
        self._terminate_timeouts()
        for role in Role:
            if spec.group(role).zones is not None:
                self.set_group_zones(role, spec.group_zones(role))

    def set_group_zones(self, role: Role, zones: tuple[str, ...]) -> None:
        """UpdateAutoScalingGroup with the subnets of ``zones`` (one subnet per AZ, as provisioned)."""
        ec2 = self.cloud.session.client("ec2", region_name=self.spec.region)
        subnets = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
        missing = [z for z in zones if z not in subnets]
        if missing:
            raise BadInput(f"no subnet in {', '.join(missing)}")
        asg = self.cloud.session.client("autoscaling", region_name=self.spec.region)
        asg.update_auto_scaling_group(
            AutoScalingGroupName=self.groups[role], VPCZoneIdentifier=",".join(subnets[z] for z in zones)
        )

    def _terminate_timeouts(self) -> None:
        from autojoin.localcloud import TERMINATING, HookSpec

        engine = self.cloud.engine
        for real in self.groups.values():
            for hook in engine.hooks_for(real, TERMINATING):
                if hook.heartbeat_timeout != self.spec.hook_timeouts.terminate:
                    engine.put_hook(
                        HookSpec(
                            hook.group,
                            hook.name,
                            hook.transition,
                            self.spec.hook_timeouts.terminate,
                            hook.default_result,
                            hook.metadata,
                        )
                    )

    def _seed(self) -> None:
        spec = self.spec
        placed: dict[Role, list[tuple[InstanceSpec, str]]] = {r: [] for r in Role}
        for role in Role:
            for inst in spec.instances(role):
                real = self.place(self.groups[role], inst.az, inst.lifecycle_state, instance_id=inst.id)
                self.aliases.add(inst.id, real)  # the same id: nothing to rewrite
                placed[role].append((inst, real))
            group = self.cloud.engine.group(self.groups[role])
            capacity = sum(
                1 for inst, _ in placed[role] if inst.lifecycle_state in {"InService", "Pending:Wait"}
            )
            g_spec = spec.group(role)
            group.desired_capacity = capacity
            group.min_size = 0
            group.max_size = max(g_spec.max_size or 0, capacity, group.max_size or 0)
        members = [(r, i, real) for r in Role for i, real in placed[r] if spec.member(i)]
        if spec.exists:
            self._form_swarm(members)
        for role in Role:
            for inst, real in placed[role]:
                if inst.lifecycle_state in {"Pending:Wait", "Terminating:Wait"}:
                    self.open_action(real, inst.lifecycle_state)
                if not inst.healthy:
                    self.cloud.crash_instance(real)
        self.cloud.clock.run_due()

    def place(self, group: str, az: str, lifecycle_state: str, *, instance_id: str | None = None) -> str:
        """An instance of ``group`` in ``az`` and ``lifecycle_state``: no hook runs, no event is emitted.

        With ``instance_id`` (``i-`` and 8 to 17 hex digits, as a STATE file takes) the instance bears
        that id, so events naming it reach the handlers unchanged."""
        with _instance_id_as(instance_id):
            real = str(self.cloud.place_instance(group, az, lifecycle_state))
        if instance_id is not None and real != instance_id:
            raise RuntimeError(f"the local cloud named the instance {real}, not {instance_id}")
        self._order[real] = len(self._order)
        return real

    def open_action(
        self,
        instance_id: str,
        lifecycle_state: str,
        *,
        token: str | None = None,
        hook_name: str | None = None,
    ) -> str | None:
        """Put the instance in Pending:Wait / Terminating:Wait with an open action (token given or new),
        timers armed, without emitting its event. None when its group has no hook for that transition."""
        opened = self.cloud.open_action(instance_id, lifecycle_state, token=token, hook_name=hook_name)
        return None if opened is None else str(opened)

    def _form_swarm(self, members: list[tuple[Role, InstanceSpec, str]]) -> None:
        """What the first manager's init and the others' joins left behind: tokens stored, state saved."""
        from autojoin.bootstrap import build_deps
        from autojoin.settings import Settings

        managers = [m for m in members if m[0] is Role.MANAGER]
        if not managers:
            if members:
                raise BadInput("state: the cluster exists but has no manager (set exists: false)")
            return
        env = {**self.stack.env["OnLaunchFunction"], "AWS_REGION": self.spec.region}
        deps = build_deps(
            Settings.from_env(env),
            orchestrator=self.cloud.swarm,
            clock=self.cloud.clock,
            session=self.cloud.session,
        )
        swarm = self.cloud.swarm
        cluster = self.spec.cluster
        first = managers[0][2]
        info = {i.instance_id: i for r in Role for i in self.cloud.instances(self.groups[r])}
        address = info[first].private_ip or ""
        deps.state.claim_bootstrap(cluster, first)
        swarm.init(first, address)
        deps.state.mark_bootstrapped(cluster, first)
        for role, _inst, real in members:
            if real != first:
                ticket = JoinTicket(
                    role=role,
                    token=SecretStr(deps.vault.token(role, refresh=True).get_secret_value()),
                    manager_addresses=(f"{address}:{SWARM_PORT}",),
                    cluster=cluster,
                )
                deps.handoff.offer(real, ticket, 900)
                swarm.join(real, role)
            labels = {"az": info[real].az, "instance-id": real, "asg": self.groups[role]}
            if info[real].instance_type:
                labels["instance-type"] = str(info[real].instance_type)
            swarm.label(swarm.node_id_of(real), labels)
        nodes = tuple(
            Node(
                instance_id=real,
                role=role,
                az=info[real].az,
                group=self.groups[role],
                node_id=swarm.node_id_of(real),
                address=info[real].private_ip,
                leader=swarm.leader() == real,
            )
            for role, _inst, real in members
        )
        deps.state.save_snapshot(
            ClusterView(
                cluster=cluster,
                nodes=nodes,
                zones=self.spec.group_zones(Role.MANAGER),
                taken_at=self.cloud.clock.now(),
            )
        )

    # --- observation -------------------------------------------------------------------------------

    def instances(self, role: Role) -> list[Any]:
        return self.cloud.instances(self.groups[role])

    def observe(self) -> ClusterState:
        cloud = self.cloud
        az_of: dict[str, str] = {}
        groups: dict[str, dict[str, int]] = {}
        for role in Role:
            infos = cloud.instances(self.groups[role])
            for i in infos:
                az_of[i.instance_id] = i.az
            groups[role.value] = dict(Counter(str(i.lifecycle_state) for i in infos))
        for t in cloud.engine.tracked.values():  # terminated ones keep their AZ
            az_of.setdefault(t.instance_id, t.az)
        swarm = cloud.swarm
        members = tuple(
            replace(m, instance_id=self.aliases.declared(m.instance_id))
            for m in members_from_snapshot(swarm.snapshot(), az_of, swarm.leader())
        )
        return ClusterState(
            at=self.elapsed(),
            zones=self.spec.zones,
            has_leader=bool(swarm.has_leader()),
            members=members,
            groups=groups,
            lifecycle=count_results(cloud.lifecycle_results[self.marks.lifecycle :]),
            down_zones=tuple(sorted(cloud.engine.zones_down)),
        )

    def watch_invocations(self, hook: Callable[[str, ClusterState, ClusterState], None]) -> bool:
        """Call ``hook(function, before, after)`` around every function invocation, so a check can tell
        autojoin's own actions from the world's. The LocalCloud has no observer for this yet: this wraps
        its one invocation path (``_call``) and returns False, checking nothing, if that is gone."""
        call = getattr(self.cloud, "_call", None)
        if call is None:
            return False

        def watched(fn: str, event: dict[str, Any]) -> Any:
            before = self.observe()
            out = call(fn, event)
            hook(fn, before, self.observe())
            return out

        self.cloud._call = watched  # type: ignore[method-assign]
        return True

    def new_calls(self) -> list[Any]:
        return self.cloud.calls[self.marks.calls :]

    def new_invocations(self) -> list[Any]:
        return self.cloud.invocations[self.marks.invocations :]

    def new_lifecycle(self) -> list[Any]:
        return self.cloud.lifecycle_results[self.marks.lifecycle :]

    def log_lines(self) -> list[str]:
        return self.logs.lines

    # --- rewriting ---------------------------------------------------------------------------------

    def rewrite_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event with declared ids replaced by the local cloud's (group ARNs by group name)."""

        def group_arn(m: re.Match[str]) -> str:
            real_name = self.aliases.real(m["name"])
            for real in self.groups.values():
                if real == real_name:
                    arn = str(self.cloud.engine.group(real).arn)
                    self.aliases.add(m[0], arn)
                    return arn
            return m[0]

        def fix(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: fix(v) for k, v in value.items()}
            if isinstance(value, list):
                return [fix(v) for v in value]
            if isinstance(value, str):
                return _GROUP_ARN.sub(group_arn, value)
            return value

        out = fix(event)
        assert isinstance(out, dict)
        rewritten = self.aliases.inward(out)
        assert isinstance(rewritten, dict)
        return rewritten

    def sort_key(self, instance_id: str) -> tuple[int, str]:
        """Seeded instances in the state's order, then the rest by id."""
        return (self._order.get(instance_id, len(self._order)), instance_id)

    def is_id(self, text: str) -> bool:
        return bool(_ID.fullmatch(text))
