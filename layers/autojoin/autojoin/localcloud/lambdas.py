"""Lambda: running the template's functions in process (module loaded from CodeUri, a context object,
the function's environment), synchronous and asynchronous invocation with retries, maximum event
age, OnFailure destinations and dead-letter queues, and the custom termination policy's
synchronous call with its budget."""

from __future__ import annotations

import copy
import importlib.util
import inspect
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from autojoin.adapters.sim.clock import SimClock
from autojoin.bootstrap import build_deps
from autojoin.localcloud.base import CloudBase, Handler
from autojoin.localcloud.errors import LocalCloudError
from autojoin.localcloud.records import Invocation, redact
from autojoin.ports import CommandRunner
from autojoin.settings import Settings

_ASG_SLR = "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
_RETRY_DELAYS = (60.0, 120.0)  # Lambda asynchronous invocation: 1 minute, then 2 minutes
_MODULES: dict[Path, ModuleType] = {}


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


class LambdaRuntime(CloudBase):
    """LocalCloud's Lambda side."""

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
        self,
        fn: str,
        event: dict[str, Any],
        exc: BaseException | None,
        attempts: int,
        condition: str,
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
