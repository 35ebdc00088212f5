"""What every side of LocalCloud shares: its state (declared here, set by ``LocalCloud.__init__`` and
``__enter__`` in cloud.py), the engine and stack it opened, who is running now, and lookups of groups and
zones. The sides (controls.py, routing.py, lambdas.py, nodes.py) build on this class."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from autojoin.adapters.sim.clock import Scheduled, SimClock
from autojoin.localcloud.asg import AsgEngine
from autojoin.localcloud.errors import LocalCloudError
from autojoin.localcloud.provision import Stack
from autojoin.localcloud.records import AwsCall, Delivery, Invocation, LifecycleRecord, PolicyCall
from autojoin.localcloud.template import LoadedTemplate

Handler = Callable[..., Any]


class CloudBase:
    """LocalCloud's shared state and lookups."""

    template_path: Path
    seed: int
    start: datetime
    region: str
    zones: tuple[str, ...]
    account: str
    policy_budget_seconds: float
    count_wall_time: bool
    calls: list[AwsCall]
    invocations: list[Invocation]
    failures: list[dict[str, Any]]
    dropped: list[dict[str, Any]]
    events: list[dict[str, Any]]
    deliveries: list[Delivery]
    rng: random.Random
    clock: SimClock
    session: boto3.Session
    _admin: boto3.Session
    _orchestrator_arg: Any
    _engine_opts: dict[str, float]
    _handlers: dict[str, Handler]
    _deps: dict[str, Any]
    _running: list[str]
    _periodic: list[Scheduled]
    _stack: Stack | None
    _template: LoadedTemplate | None
    _swarm: Any
    _mock: Any
    _saved_env: dict[str, str | None]
    _engine: AsgEngine | None

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

    @contextmanager
    def _as(self, who: str) -> Iterator[None]:
        self._running.append(who)
        try:
            yield
        finally:
            self._running.pop()

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

    if TYPE_CHECKING:  # defined by the other sides (lambdas.py, routing.py, nodes.py); declared for mypy

        def invoke(self, function_logical_id: str, event: Mapping[str, Any]) -> Any: ...
        def _invoke_async(self, fn: str, event: dict[str, Any], attempt: int, first_at: datetime) -> None: ...
        def _send(self, queue_arn: str, body: Any) -> None: ...
        @property
        def orchestrator(self) -> Any: ...
