"""LocalCloud: moto plus the Auto Scaling lifecycle engine, event routing from template.yaml, simulated
time. The API is the contract in docs/localcloud-api.md; what this module adds to it, the semantics it
implements and its known gaps against AWS are in README.md next to this file."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from moto import mock_aws
from moto.autoscaling.models import autoscaling_backends
from moto.ec2.models import ec2_backends
from moto.moto_api._internal import mock_random

from autojoin.adapters.sim.clock import Scheduled, SimClock
from autojoin.localcloud import motopatch
from autojoin.localcloud.asg import AsgEngine
from autojoin.localcloud.base import Handler
from autojoin.localcloud.controls import Controls
from autojoin.localcloud.errors import LocalCloudError
from autojoin.localcloud.lambdas import (
    _ASG_SLR,
    _MODULES,
    _RETRY_DELAYS,
    LambdaContext,
    LambdaRuntime,
)
from autojoin.localcloud.nodes import NodeSide
from autojoin.localcloud.provision import Provisioner, Stack
from autojoin.localcloud.records import AwsCall, Delivery, Invocation, redact
from autojoin.localcloud.routing import EventBus, _rate_seconds
from autojoin.localcloud.template import LoadedTemplate, TemplateError, load_template

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


class LocalCloud(Controls, EventBus, LambdaRuntime, NodeSide):
    """See docs/localcloud-api.md. Use as a context manager; nothing touches moto before ``__enter__``.

    Each side of it lives in the module named for it: controls.py (what a test does to the groups),
    routing.py (the event bus), lambdas.py (running functions), nodes.py (instances and the orchestrator);
    the Auto Scaling engine is asg.py."""

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
            "VpcId": vpc,
            "SubnetIds": subnets,
            **{f"Zone{c}": self.zones[i % len(self.zones)] for i, c in enumerate("ABC")},
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
        self._test_rotation_schedules()
        return self._stack

    def _test_rotation_schedules(self) -> None:
        """What Secrets Manager does when a rotation schedule is created without an immediate rotation: it
        runs the function's testSecret step. A failure there fails the stack, so it fails provisioning.

        Left out of ``invocations`` and of the seeded random stream, so that a run stays comparable with
        the runs recorded before this check existed."""
        saved = self.rng.getstate()
        try:
            for arn, target in sorted(self.stack.rotations.items()):
                fn = self.stack.function_for_arn(target)
                if fn is None:
                    continue
                event = {"SecretId": arn, "ClientRequestToken": uuid.uuid4().hex, "Step": "testSecret"}
                _result, exc, _elapsed = self._call(fn, event)
                if exc is not None:
                    raise LocalCloudError(
                        f"the stack would fail: testSecret of {arn} raised {type(exc).__name__} when its "
                        "rotation schedule was created"
                    ) from exc
        finally:
            self.rng.setstate(saved)

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


def _botocore_session() -> botocore.session.Session:
    """A fresh botocore session sharing one model loader (loading service models is the slow part)."""
    global _LOADER  # noqa: PLW0603 - a process-wide cache of immutable service models
    core = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = botocore.loaders.create_loader()
    core.register_component("data_loader", _LOADER)
    return core


_LOADER: Any = None


__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_ZONES",
    "_ASG_SLR",
    "_MODULES",
    "_RETRY_DELAYS",
    "Delivery",
    "Handler",
    "LambdaContext",
    "LocalCloud",
    "LocalCloudError",
    "TemplateError",
    "_rate_seconds",
]
