"""LocalCloud: moto plus the Auto Scaling lifecycle engine, event routing from template.yaml, simulated
time. The API is the contract in docs/localcloud-api.md; what this module adds to it, the semantics it
implements and its known gaps against AWS are in README.md next to this file."""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from moto import mock_aws
from moto.autoscaling.models import autoscaling_backends
from moto.ec2.models import ec2_backends
from moto.moto_api._internal import mock_random
from pydantic import SecretStr

from autojoin.adapters.sim.clock import Scheduled, SimClock
from autojoin.adapters.sim.swarm import SimSwarm
from autojoin.bootstrap import build_deps
from autojoin.domain.model import InstanceInfo, Role
from autojoin.localcloud import motopatch
from autojoin.localcloud.asg import AsgEngine
from autojoin.localcloud.patterns import matches
from autojoin.localcloud.provision import Provisioner, RuleSpec, Stack, TargetSpec
from autojoin.localcloud.records import AwsCall, Invocation, LifecycleRecord, PolicyCall, redact
from autojoin.localcloud.template import LoadedTemplate, TemplateError, load_template
from autojoin.node.agent import pending_token, store_token, take_ticket
from autojoin.ports import CommandRunner, JoinTicket
from autojoin.settings import Settings

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
_ASG_SLR = "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
_RETRY_DELAYS = (60.0, 120.0)  # Lambda asynchronous invocation: 1 minute, then 2 minutes
_MODULES: dict[Path, ModuleType] = {}

Handler = Callable[..., Any]


class LocalCloudError(RuntimeError):
    """The local cloud was used wrongly (not entered, unknown group or function, ...)."""


@dataclass
class LambdaContext:
    """The parts of Lambda's context object handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "localcloud"
    deadline: datetime | None = None
    clock: SimClock | None = None

    def get_remaining_time_in_millis(self) -> int:
        if self.deadline is None or self.clock is None:
            return 300_000
        return max(0, int((self.deadline - self.clock.now()).total_seconds() * 1000))


@dataclass(frozen=True)
class Delivery:
    """One event that went through the bus: which rules matched it and which functions it reached."""

    event_id: str
    detail_type: str
    at: datetime
    rules: tuple[str, ...]
    functions: tuple[str, ...]


class LocalCloud:
    """See docs/localcloud-api.md. Use as a context manager; nothing touches moto before ``__enter__``."""

    def __init__(
        self,
        template: str | Path = "template.yaml",
        *,
        seed: int = 0,
        start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        region: str = "us-east-1",
        zones: tuple[str, ...] = DEFAULT_ZONES,
        orchestrator: Any = "sim",
        account: str = DEFAULT_ACCOUNT,
        policy_budget_seconds: float = 2.0,
        policy_retry_seconds: float = 60.0,
        health_check_delay: float = 30.0,
        count_wall_time: bool = False,
    ) -> None:
        self.template_path = Path(template)
        self.seed = seed
        self.start = start
        self.region = region
        self.zones = tuple(zones)
        self.account = account
        self.policy_budget_seconds = policy_budget_seconds
        self.count_wall_time = count_wall_time
        self._orchestrator_arg = orchestrator
        self._engine_opts = {
            "policy_retry_seconds": policy_retry_seconds,
            "health_check_delay": health_check_delay,
        }
        self.calls: list[AwsCall] = []
        self.invocations: list[Invocation] = []
        self.failures: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []  # every event Auto Scaling emitted
        self.deliveries: list[Delivery] = []
        self._handlers: dict[str, Handler] = {}
        self._deps: dict[str, Any] = {}
        self._running: list[str] = []
        self._periodic: list[Scheduled] = []
        self._stack: Stack | None = None
        self._template: LoadedTemplate | None = None
        self._swarm: Any = None
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._engine: AsgEngine | None = None

    # --- context -----------------------------------------------------------------------------------

    def __enter__(self) -> LocalCloud:

        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        mock_random.seed(self.seed)
        self.rng = random.Random(self.seed)  # noqa: S311 - a deterministic simulation
        self._mock = mock_aws()
        self._mock.start()
        self.clock = SimClock(self.start)
        core = _botocore_session()
        core.register("provide-client-params", self._record_call)
        self.session = boto3.Session(botocore_session=core, region_name=self.region)
        self._admin = boto3.Session(botocore_session=_botocore_session(), region_name=self.region)
        self._engine = AsgEngine(
            autoscaling_backend=autoscaling_backends[self.account][self.region],
            ec2_backend=ec2_backends[self.account][self.region],
            clock=self.clock,
            rng=self.rng,
            emit=self._emit,
            invoke_policy=self._invoke_policy,
            account=self.account,
            region=self.region,
            listeners=[self._on_instance],
            caller=lambda: self._running[-1] if self._running else None,
            **self._engine_opts,
        )
        motopatch.install(self._engine)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._engine is not None:
            motopatch.uninstall(self._engine)
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    @property
    def engine(self) -> AsgEngine:
        if self._engine is None:
            raise LocalCloudError("the local cloud is not open: use `with LocalCloud(...) as cloud`")
        return self._engine

    @property
    def stack(self) -> Stack:
        if self._stack is None:
            raise LocalCloudError("nothing provisioned yet: call cloud.provision(...) first")
        return self._stack

    @property
    def lifecycle_results(self) -> list[LifecycleRecord]:
        return self.engine.lifecycle_results

    @property
    def policy_calls(self) -> list[PolicyCall]:
        return self.engine.policy_calls

    # --- provisioning ------------------------------------------------------------------------------

    def provision(
        self,
        cluster: str = "demo",
        managers: int = 0,
        workers: int = 0,
        heartbeat_timeout: int = 900,
        params: Mapping[str, Any] | None = None,
        *,
        stack_name: str | None = None,
    ) -> Stack:
        """Create the template's resources in moto; groups start at ``managers``/``workers``."""
        engine = self.engine
        ec2 = self._admin.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{16 * i}.0/20", AvailabilityZone=z)["Subnet"][
                "SubnetId"
            ]
            for i, z in enumerate(self.zones)
        ]
        images = sorted(engine.ec2.amis)  # the backend, not DescribeImages: moto knows thousands of AMIs
        derived: dict[str, Any] = {
            "ClusterName": cluster,
            "ManagerCount": managers,
            "WorkerCount": workers,
            "LaunchHookTimeout": heartbeat_timeout,
            "SubnetIds": subnets,
            "ImageId": images[0] if images else "ami-12c6146b",
        }
        derived.update(params or {})
        self._template = load_template(self.template_path, {"ClusterName": cluster})
        declared = self._template.parameters
        name = stack_name or f"autojoin-{cluster}"
        prov = Provisioner(
            template=self._template,
            session=self._admin,
            engine=engine,
            stack_name=name,
            region=self.region,
            account=self.account,
            zones=self.zones,
            params={k: v for k, v in derived.items() if k in declared},
            rng=self.rng,
        )
        prov.provision_all()
        prov.link()
        groups = prov.groups

        def role_group(role: str, lid: str) -> str:
            if lid in groups:
                return groups[lid]
            for gname in groups.values():
                tags = {t["Key"]: t["Value"] for t in engine.group(gname).tags}
                if tags.get("autojoin:role") == role:
                    return gname
            return ""

        self._stack = Stack(
            name=name,
            cluster=cluster,
            manager_group=role_group("manager", "ManagerGroup"),
            worker_group=role_group("worker", "WorkerGroup"),
            env={lid: dict(f.env) for lid, f in prov.functions.items()},
            functions=prov.functions,
            rules=prov.rules,
            permissions=prov.permissions,
            physical=prov.physical,
            groups=groups,
            rotations=prov.rotations,
            parameters=prov.params,
        )
        return self._stack

    # --- controls ----------------------------------------------------------------------------------

    def set_desired(self, group: str, desired: int, *, adjust_bounds: bool = True) -> None:
        """SetDesiredCapacity. With ``adjust_bounds`` (default) Min/Max widen to admit ``desired``."""
        g = self._group(group)
        if desired < 0:
            raise LocalCloudError("desired capacity cannot be negative")
        if adjust_bounds:
            g.max_size = max(g.max_size or 0, desired)
            g.min_size = min(g.min_size or 0, desired)
        elif not (g.min_size or 0) <= desired <= (g.max_size or 0):
            raise LocalCloudError(f"desired {desired} outside [{g.min_size}, {g.max_size}] of {group}")
        g.set_desired_capacity(desired)

    def set_protection(self, group: str, instance_ids: list[str], protected: bool = True) -> None:
        self.engine.asb.set_instance_protection(group, instance_ids, protected)

    def set_termination_policy(self, group: str, function_logical_id: str | None) -> None:
        """Make a template function the group's custom termination policy (or remove it)."""
        if function_logical_id is not None and function_logical_id not in self.stack.functions:
            raise LocalCloudError(f"no function {function_logical_id} in the template")
        self.engine.groups[self._group(group).name].policy_function = function_logical_id
        g = self._group(group)
        g.termination_policies = (
            [self.stack.functions[function_logical_id].arn] if function_logical_id else ["Default"]
        )

    def set_lifecycle_policy(self, group: str, *, retain_on_terminate_abandon: bool) -> None:
        self.engine.groups[self._group(group).name].retain_on_terminate_abandon = retain_on_terminate_abandon

    def set_max_instance_lifetime(self, group: str, seconds: int | None) -> None:
        self.engine.groups[self._group(group).name].max_instance_lifetime = seconds

    def terminate_instance(self, instance_id: str, decrement: bool = True) -> None:
        """TerminateInstanceInAutoScalingGroup semantics (terminate hooks run; protection ignored)."""
        self.engine.api_terminate(instance_id, decrement)

    def crash_instance(self, instance_id: str) -> None:
        self.engine.crash(instance_id)

    def zone_outage(self, zone: str) -> list[str]:
        self._zone(zone)
        return self.engine.zone_outage(zone)

    def zone_recover(self, zone: str) -> None:
        self._zone(zone)
        self.engine.zone_recover(zone)

    def start_instance_refresh(self, group: str, *, launch_before_terminate: bool = False) -> str:
        return self.engine.start_instance_refresh(
            self._group(group).name, launch_before_terminate=launch_before_terminate
        )

    def rebalance(self, group: str) -> None:
        self.engine.rebalance(self._group(group).name)

    def refresh_status(self, group: str) -> str | None:
        """The latest instance refresh's status (InProgress, Successful, Failed, Cancelled), None if never."""
        history = self.engine.refresh_history.get(group)
        return history[0].status if history else None

    def place_instance(self, group: str, az: str, lifecycle_state: str = "InService") -> str:
        """Seed an instance of ``group`` in ``az`` and ``lifecycle_state``: no hook runs, no event is
        emitted, desired capacity is left alone (a described state that already happened)."""
        self._zone(az)
        return self.engine.place(self._group(group).name, az, lifecycle_state)

    def open_action(
        self,
        instance_id: str,
        lifecycle_state: str,
        *,
        token: str | None = None,
        hook_name: str | None = None,
    ) -> str | None:
        """Put a member in Pending:Wait / Terminating:Wait with an open lifecycle action (``token`` or a new
        one), timers armed, without emitting its event. Returns the token; None if the group has no such
        hook."""
        if lifecycle_state not in {"Pending:Wait", "Terminating:Wait"}:
            raise LocalCloudError(
                f"open_action needs Pending:Wait or Terminating:Wait, not {lifecycle_state}"
            )
        try:
            return self.engine.open_action(instance_id, lifecycle_state, token=token, hook_name=hook_name)
        except ValueError as exc:
            raise LocalCloudError(str(exc)) from None

    def instances(self, group: str, *, include_gone: bool = False) -> list[InstanceInfo]:
        g = self._group(group)
        out = []
        for st in g.instance_states:
            if not include_gone and st.lifecycle_state == "Terminated":
                continue
            inst = st.instance
            out.append(
                InstanceInfo(
                    instance_id=inst.id,
                    az=st.availability_zone,
                    group=g.name,
                    instance_type=inst.instance_type,
                    private_ip=inst.private_ip,
                    state=inst.state,
                    lifecycle_state=st.lifecycle_state,
                    protected_from_scale_in=bool(st.protected_from_scale_in),
                    healthy=st.health_status == "Healthy",
                )
            )
        return out

    def layout(self, group: str) -> dict[str, int]:
        """InService instances per AZ (every group AZ listed)."""
        counts = {z: 0 for z in self._group(group).availability_zones}
        for i in self.instances(group):
            if i.lifecycle_state == "InService":
                counts[i.az] = counts.get(i.az, 0) + 1
        return dict(sorted(counts.items()))

    def subscribe(self, listener: Callable[[str, str], None]) -> None:
        """``listener(what, instance_id)`` for launched, in_service, terminated, crashed, retained."""
        self.engine.listeners.append(listener)

    # --- time --------------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def run_until_idle(self, max_seconds: float = 3600) -> float:
        """Advance simulated time until nothing is pending (schedules aside) or ``max_seconds`` passed.

        Returns the simulated seconds that went by."""
        begin = self.clock.now()
        deadline = begin + timedelta(seconds=max_seconds)
        while True:
            self.clock.run_due()
            nxt = self.clock.next_due()
            periodic = sum(1 for p in self._periodic if p.pending)
            if nxt is None or self.clock.pending() <= periodic:
                break
            if nxt > deadline:
                self.clock.advance_to(max(deadline, self.clock.now()))
                break
            self.clock.advance_to(nxt)
        return (self.clock.now() - begin).total_seconds()

    # --- events ------------------------------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.clock.call_later(0, lambda: self._route(event))

    def deliver(self, event: Mapping[str, Any], duplicate: bool = False, delay: float = 0) -> None:
        """Put an event on the bus (EventBridge PutEvents): routed by the template's rules after ``delay``
        simulated seconds; ``duplicate`` delivers it twice (at-least-once delivery)."""
        ev = copy.deepcopy(dict(event))
        for _ in range(2 if duplicate else 1):
            self.clock.call_later(delay, lambda: self._route(ev))

    def _route(self, event: dict[str, Any]) -> None:
        rules: list[str] = []
        functions: list[str] = []
        for rule in self.stack.rules if self._stack else []:
            if not rule.enabled or rule.pattern is None or not matches(rule.pattern, event):
                continue
            rules.append(rule.logical_id)
            for target in rule.targets:
                fn = target.function
                if fn is None:
                    if target.arn.startswith("arn:aws:sqs:"):  # a queue target gets the event itself
                        self._send(target.arn, event)
                    continue
                if not self.stack.permitted(fn, "events.amazonaws.com", rule.arn):
                    # EventBridge cannot invoke it (no resource-based permission): not retried; the
                    # target's dead-letter queue gets the event when it has one
                    self._target_failed(rule, target, event, "NO_PERMISSIONS")
                    continue
                functions.append(fn)
                self._invoke_async(fn, event, 1, self.clock.now())
        self.deliveries.append(
            Delivery(
                str(event.get("id", "")),
                str(event.get("detail-type", "")),
                self.clock.now(),
                tuple(rules),
                tuple(functions),
            )
        )

    def _target_failed(self, rule: RuleSpec, target: TargetSpec, event: dict[str, Any], code: str) -> None:
        entry = {"rule": rule.logical_id, "target": target.id, "error": code, "event": redact(event)}
        if target.dead_letter_arn is None:
            self.dropped.append(entry)
            return
        self._send(target.dead_letter_arn, redact(event))
        self.failures.append({**entry, "destination": target.dead_letter_arn})

    def _send(self, queue_arn: str, body: Any) -> None:
        sqs = self._admin.client("sqs")
        url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))

    def enable_schedules(self) -> int:
        """Fire the template's ``rate(...)`` schedule rules on the SimClock. Returns how many were armed."""
        armed = 0
        for rule in self.stack.rules:
            period = _rate_seconds(rule.schedule)
            if period is None or not rule.enabled:
                continue
            self._arm(rule, period)
            armed += 1
        return armed

    def _arm(self, rule: RuleSpec, period: float) -> None:
        def tick() -> None:
            self._periodic[:] = [p for p in self._periodic if p.pending]
            event: dict[str, Any] = {
                "version": "0",
                "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "detail-type": "Scheduled Event",
                "source": "aws.events" if ":events:" in rule.arn else "aws.scheduler",
                "account": self.account,
                "time": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": self.region,
                "resources": [rule.arn],
                "detail": {},
            }
            self.events.append(event)
            for target in rule.targets:
                if target.function:
                    principal = (
                        "events.amazonaws.com" if ":events:" in rule.arn else "scheduler.amazonaws.com"
                    )
                    if ":scheduler:" in rule.arn or self.stack.permitted(
                        target.function, principal, rule.arn
                    ):
                        self._invoke_async(target.function, event, 1, self.clock.now())
            self._periodic.append(self.clock.call_later(period, tick))

        self._periodic.append(self.clock.call_later(period, tick))

    # --- invocation --------------------------------------------------------------------------------

    def register_handler(self, logical_id: str, fn: Handler) -> None:
        """Use ``fn(event, context)`` (or ``fn(event, context, deps)``) instead of the function's module."""
        self._handlers[logical_id] = fn

    def invoke(self, function_logical_id: str, event: Mapping[str, Any]) -> Any:
        """A direct synchronous invoke (RequestResponse): the result, or the handler's exception."""
        ev = copy.deepcopy(dict(event))
        result, exc, elapsed = self._call(function_logical_id, ev)
        self._record(function_logical_id, ev, 1, "sync", result, exc, elapsed)
        if exc is not None:
            raise exc
        return result

    def _invoke_async(self, fn: str, event: dict[str, Any], attempt: int, first_at: datetime) -> None:
        spec = self.stack.functions[fn]
        if (
            spec.max_event_age is not None
            and (self.clock.now() - first_at).total_seconds() > spec.max_event_age
        ):
            self._fail(fn, event, None, attempt - 1, "EventAgeExceeded")
            return
        ev = copy.deepcopy(event)
        result, exc, elapsed = self._call(fn, ev)
        self._record(fn, ev, attempt, "async", result, exc, elapsed)
        if exc is None:
            return
        if attempt <= spec.max_retries:
            delay = _RETRY_DELAYS[min(attempt - 1, len(_RETRY_DELAYS) - 1)]
            self.clock.call_later(delay, lambda: self._invoke_async(fn, event, attempt + 1, first_at))
        else:
            self._fail(fn, event, exc, attempt, "RetriesExhausted")

    def _invoke_policy(self, fn: str, payload: dict[str, Any]) -> tuple[list[str] | None, float, bool]:
        """Auto Scaling calls the custom termination policy synchronously, with a 2 s budget.

        Its resource-based policy must let the Auto Scaling service-linked role invoke it; without that
        permission the call fails (recorded as outcome "denied") and Auto Scaling has no answer."""
        slr = f"arn:aws:iam::{self.account}:role/aws-service-role/{_ASG_SLR}"
        if not self.stack.permitted(fn, slr, None):
            self._record(fn, payload, 1, "termination-policy", None, None, 0.0, outcome="denied")
            return None, 0.0, False
        result, exc, elapsed = self._call(fn, copy.deepcopy(payload))
        over = elapsed > self.policy_budget_seconds
        outcome = "over-budget" if over and exc is None else None
        self._record(fn, payload, 1, "termination-policy", result, exc, elapsed, outcome=outcome)
        if exc is not None or over or not isinstance(result, dict):
            return None, elapsed, over
        ids = result.get("InstanceIDs")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return None, elapsed, over
        return list(ids), elapsed, over

    def _record(  # noqa: PLR0917 - one record, every field
        self,
        fn: str,
        event: dict[str, Any],
        attempt: int,
        kind: str,
        result: Any,
        exc: BaseException | None,
        elapsed: float,
        *,
        outcome: str | None = None,
    ) -> None:
        self.invocations.append(
            Invocation(
                function=fn,
                event_id=str(event.get("id", "")),
                attempt=attempt,
                outcome=outcome or ("ok" if exc is None else "error"),
                at=self.clock.now(),
                kind=kind,
                error_type=type(exc).__name__ if exc is not None else None,
                result=redact(result),
                elapsed_seconds=elapsed,
            )
        )

    def _call(self, fn: str, event: dict[str, Any]) -> tuple[Any, BaseException | None, float]:
        spec = self.stack.functions.get(fn)
        if spec is None:
            raise LocalCloudError(f"no function {fn} in the template")
        handler = self._handler(fn)
        ctx = LambdaContext(
            function_name=spec.name,
            invoked_function_arn=spec.arn,
            aws_request_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            log_group_name=f"/aws/lambda/{spec.name}",
            deadline=self.clock.now() + timedelta(seconds=spec.timeout),
            clock=self.clock,
        )
        env = {
            **spec.env,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        wants_deps = fn not in self._handlers or "deps" in inspect.signature(handler).parameters
        result: Any = None
        error: BaseException | None = None
        with self._environment(env), self._as(fn):
            try:
                deps = self.deps_for(fn) if wants_deps else None  # a warm container: built before the clock
            except Exception as exc:  # bad settings: the function fails at init, like Lambda's Init error
                return None, exc, 0.0
            sim0, wall0 = self.clock.now(), time.perf_counter()
            try:
                result = handler(event, ctx, deps=deps) if wants_deps else handler(event, ctx)
            except Exception as exc:  # the runtime reports any handler error; retries decide what next
                error = exc
        elapsed = (self.clock.now() - sim0).total_seconds()
        if self.count_wall_time:
            elapsed += time.perf_counter() - wall0
        return result, error, elapsed

    def _handler(self, fn: str) -> Handler:
        if fn in self._handlers:
            return self._handlers[fn]
        spec = self.stack.functions[fn]
        if spec.code_dir is None:
            raise LocalCloudError(f"{fn} has no local code (CodeUri) to run")
        module_name, _, attr = spec.handler.rpartition(".")
        path = spec.code_dir / (module_name.replace(".", "/") + ".py")
        if path not in _MODULES:
            if not path.exists():
                raise LocalCloudError(f"{fn}: handler file {path} does not exist")
            name = f"autojoin_localcloud_fn_{fn}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
            _MODULES[path] = module
        return getattr(_MODULES[path], attr)  # type: ignore[no-any-return]

    def deps_for(self, logical_id: str) -> Any:
        """The function's ``autojoin.bootstrap.Deps`` (one per function, like one warm container)."""
        if logical_id not in self._deps:
            env = {**self.stack.env[logical_id], "AWS_REGION": self.region}
            settings = Settings.from_env(env)
            if isinstance(self._orchestrator_arg, CommandRunner):
                # the production SwarmOrchestrator, wired as in AWS, over this runner (the real-swarm lab)
                self._deps[logical_id] = build_deps(
                    settings, runner=self._orchestrator_arg, clock=self.clock, session=self.session
                )
            else:
                self._deps[logical_id] = build_deps(
                    settings, orchestrator=self.orchestrator, clock=self.clock, session=self.session
                )
        return self._deps[logical_id]

    def _fail(
        self, fn: str, event: dict[str, Any], exc: BaseException | None, attempts: int, condition: str
    ) -> None:
        spec = self.stack.functions[fn]
        record = {
            "version": "1.0",
            "timestamp": self.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "requestContext": {
                "requestId": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "functionArn": f"{spec.arn}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {
                "errorMessage": str(exc) if exc is not None else "",
                "errorType": type(exc).__name__ if exc is not None else condition,
            },
        }
        record = redact(record)
        destination = spec.on_failure or spec.dlq
        if destination is None:
            self.dropped.append({"function": fn, "record": record})
            return
        body = record if spec.on_failure else redact(event)
        if destination.startswith("arn:aws:sqs:"):
            self._send(destination, body)
        self.failures.append({"function": fn, "destination": destination, "record": record})

    # --- AWS call recording ------------------------------------------------------------------------

    def _record_call(self, **kwargs: Any) -> None:
        """botocore ``provide-client-params``: every call a client of ``cloud.session`` makes."""
        params, model = kwargs["params"], kwargs["model"]
        self.calls.append(
            AwsCall(
                service=model.service_model.service_name,
                operation=model.name,
                params=redact(dict(params)),
                at=self.clock.now(),
                function=self._running[-1] if self._running else None,
            )
        )

    @contextmanager
    def _as(self, who: str) -> Iterator[None]:
        self._running.append(who)
        try:
            yield
        finally:
            self._running.pop()

    @contextmanager
    def _environment(self, env: Mapping[str, str]) -> Iterator[None]:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    # --- orchestrator (the node side) --------------------------------------------------------------

    @property
    def orchestrator(self) -> Any:
        if isinstance(self._orchestrator_arg, str):
            if self._orchestrator_arg != "sim":
                raise LocalCloudError(
                    f'unknown orchestrator {self._orchestrator_arg!r} ("sim" or an Orchestrator)'
                )
            return self.swarm
        return self._orchestrator_arg

    @property
    def swarm(self) -> Any:
        """The in-memory SimSwarm (orchestrator="sim"); its nodes reach AWS as their instance would."""
        if not (isinstance(self._orchestrator_arg, str) and self._orchestrator_arg == "sim"):
            raise LocalCloudError('cloud.swarm exists only with orchestrator="sim"')
        if self._swarm is None:
            self._swarm = SimSwarm(
                self.clock,
                take_ticket=self._node_take_ticket,
                store_token=self._node_store_token,
                address_of=self._address_of,
                read_pending=self._node_read_pending,
                seed=self.seed,
            )
        return self._swarm

    def _on_instance(self, what: str, instance_id: str) -> None:
        if self._swarm is not None and what in {"crashed", "terminated"}:
            self._swarm.crash(instance_id)

    def _address_of(self, instance_id: str) -> str:
        return str(self.engine.ec2.get_instance(instance_id).private_ip)

    def _role_of(self, instance_id: str) -> Role | None:
        t = self.engine.tracked.get(instance_id)
        if t is None:
            return None
        tags = {x["Key"]: x["Value"] for x in self.engine.group(t.group).tags}
        role = tags.get("autojoin:role")
        return Role(role) if role in {r.value for r in Role} else None

    def _physical(self, lid: str, attr: str) -> str:
        value = self.stack.physical.get(lid, {}).get(attr)
        if not isinstance(value, str):
            raise LocalCloudError(f"the template has no {lid}.{attr} (docs/wiring.md)")
        return value

    def _node_take_ticket(self, instance_id: str) -> Any:

        role = self._role_of(instance_id)
        if role is None:
            return None
        role_id = self._physical(
            "ManagerInstanceRole" if role is Role.MANAGER else "WorkerInstanceRole", "RoleId"
        )
        with self._as(f"node:{instance_id}"):
            raw = take_ticket(
                self.session.client("dynamodb"),
                self._physical("HandoffTable", "Ref"),
                f"{role_id}:{instance_id}",
                now=self.clock.now().timestamp(),
            )
        if raw is None:
            return None
        return JoinTicket(
            role=Role(raw["role"]),
            token=SecretStr(raw["token"]),
            manager_addresses=tuple(raw["managers"]),
            cluster=raw["cluster"],
        )

    def _secret_arn(self, role: Role) -> str:
        return self._physical("ManagerTokenSecret" if role is Role.MANAGER else "WorkerTokenSecret", "Ref")

    def _node_store_token(self, role: Role, token: Any, version_id: str | None) -> None:

        with self._as("node"):
            store_token(
                self.session.client("secretsmanager"),
                self._secret_arn(role),
                token.get_secret_value(),
                version_id,
            )

    def _node_read_pending(self, role: Role, version_id: str) -> Any:

        with self._as("node"):
            value = pending_token(self.session.client("secretsmanager"), self._secret_arn(role), version_id)
        return SecretStr(value) if value is not None else None

    # --- secrets rotation ---------------------------------------------------------------------------

    def rotate_secret(self, secret: str) -> str:
        """What Secrets Manager rotation does: the four steps, each a synchronous invoke of the template's
        rotation function for ``secret`` (logical id or ARN). Returns the new version id."""
        arn = self.stack.physical.get(secret, {}).get("Ref", secret)
        target = self.stack.rotations.get(str(arn))
        fn = self.stack.function_for_arn(target) if target else None
        if fn is None:
            raise LocalCloudError(f"no rotation schedule for {secret} in the template")
        version = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
            self.invoke(fn, {"SecretId": arn, "ClientRequestToken": version, "Step": step})
        return version

    # --- lookups -----------------------------------------------------------------------------------

    def _group(self, name: str) -> Any:
        groups = self.engine.asb.autoscaling_groups
        if name not in groups:
            raise LocalCloudError(f"no Auto Scaling group named {name!r}")
        return groups[name]

    def _zone(self, zone: str) -> None:
        if zone not in self.zones:
            raise LocalCloudError(
                f"no availability zone {zone!r} in this local cloud ({', '.join(self.zones)})"
            )


def _botocore_session() -> botocore.session.Session:
    """A fresh botocore session sharing one model loader (loading service models is the slow part)."""
    global _LOADER  # noqa: PLW0603 - a process-wide cache of immutable service models
    core = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = botocore.loaders.create_loader()
    core.register_component("data_loader", _LOADER)
    return core


_LOADER: Any = None


def _rate_seconds(expression: str | None) -> float | None:
    if not expression or not expression.startswith("rate(") or not expression.endswith(")"):
        return None
    amount, _, unit = expression[5:-1].strip().partition(" ")
    factor = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}.get(unit)
    if factor is None or not amount.isdigit():
        return None
    return float(int(amount) * factor)


__all__ = ["Delivery", "LambdaContext", "LocalCloud", "LocalCloudError", "TemplateError"]
