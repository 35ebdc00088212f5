"""Fault injection for the local cloud: AWS errors, killed functions, and at-least-once event delivery.

``install(cloud, plan)`` on an open LocalCloud (after provisioning and seeding) makes the run hostile:

- **AWS errors** (botocore ``before-call`` on ``cloud.session``, only while one of the template's
  functions runs — never the local cloud's own set-up, the test driving it, or a node's side): each call
  of a faulted service draws, per attempt of the client's retry policy (its ``retries`` config; botocore's
  legacy default is 5 attempts), ``throttle`` (``ThrottlingException``, 400) and ``errors``
  (``InternalFailure``/``ServiceUnavailable``, 500/503). The call fails with that ``ClientError`` only
  when every attempt drew a fault — what the SDK would raise after its retries. With
  ``sdk_retries=False`` a single draw decides: the share is then the share of calls that FAIL.
- **Killed functions** (the Lambda timed out or its container died half way): with share ``kill`` an
  invocation dies before its k-th AWS call (k drawn uniformly from 0..``kill_max_calls``; a function that
  makes fewer calls completes), or at the points listed in ``kills``. The death raises ``FunctionKilled``
  (a BaseException: no handler can catch it) and the invocation counts as failed, so Lambda's
  asynchronous retries and failure destination apply exactly as for an error.
- **Event delivery** (every event Auto Scaling emits, and every scenario ``deliver``): with share
  ``duplicate`` delivered 2 or 3 times, with share ``late`` delayed by up to ``max_delay`` seconds (so
  events overtake one another: out of order), with share ``lose`` never delivered. Schedule ticks are
  not faulted (a lost tick is just a later tick).

Everything is drawn from ``random.Random(plan.seed)`` in the order the simulation asks, so a run with the
same scenario, seed and plan reproduces. What was injected is kept in ``Faults.log``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SERVICES = ("autoscaling", "ec2", "dynamodb", "secretsmanager", "ssm")
INJECTED_MARK = "injected by the local cloud's fault plan"  # in every injected error's message
KILLED_MARK = "killed by the local cloud's fault plan"
_LEGACY_ATTEMPTS = 5  # botocore's default (legacy) retry mode: 1 call + 4 retries
_SERVER_ERRORS = (("InternalFailure", 500), ("ServiceUnavailable", 503))
_THROTTLE_CODES = {
    "dynamodb": "ThrottlingException",
    "autoscaling": "Throttling",
    "ec2": "RequestLimitExceeded",
    "ssm": "ThrottlingException",
    "secretsmanager": "ThrottlingException",
}


class FunctionKilled(BaseException):
    """The function's container died (timeout, out of memory) before its next AWS call."""


class FunctionCrashed(Exception):
    """What Lambda reports for a killed invocation (Sandbox.Timedout / Runtime.ExitError): a failure its
    retries and failure destination handle, and the error a synchronous caller gets."""


class KillPoint(BaseModel):
    """Kill the ``invocation``-th run (1-based, counting every attempt) of ``function`` before its
    ``after_calls``-th AWS call (0: before its first)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    function: str
    invocation: int = Field(default=1, ge=1)
    after_calls: int = Field(default=0, ge=0)


class FaultPlan(BaseModel):
    """A scenario's ``faults:`` block (every share 0..1; all default to no fault)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    throttle: float = Field(default=0.0, ge=0, le=1)
    errors: float = Field(default=0.0, ge=0, le=1)
    services: tuple[str, ...] = SERVICES
    operations: tuple[str, ...] = ()  # only these operations (e.g. CompleteLifecycleAction); () = all
    sdk_retries: bool = True
    kill: float = Field(default=0.0, ge=0, le=1)
    kill_max_calls: int = Field(default=8, ge=0)
    kills: tuple[KillPoint, ...] = ()
    duplicate: float = Field(default=0.0, ge=0, le=1)
    late: float = Field(default=0.0, ge=0, le=1)
    max_delay: float = Field(default=300.0, ge=0)
    lose: float = Field(default=0.0, ge=0, le=1)

    @property
    def active(self) -> bool:
        shares = (self.throttle, self.errors, self.kill, self.duplicate, self.late, self.lose)
        return any(s > 0 for s in shares) or bool(self.kills)


@dataclass
class _Run:
    function: str
    calls: int = 0
    die_at: int | None = None


@dataclass
class Faults:
    """The installed plan and what it did (``log``: one line per injected fault)."""

    plan: FaultPlan
    rng: random.Random
    log: list[str] = field(default_factory=list)
    runs: Counter[str] = field(default_factory=Counter)
    stack: list[_Run] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(Counter(line.split(" ", 1)[0] for line in self.log))

    # --- AWS errors and kill points (botocore before-call) -----------------------------------------

    def before_call(self, model: Any, context: Mapping[str, Any] | None = None, **_: Any) -> Any:
        if not self.stack:
            return None
        run = self.stack[-1]
        service = model.service_model.service_name
        op = model.name
        if run.die_at is not None and run.calls >= run.die_at:
            self.log.append(f"kill {run.function} before call {run.calls + 1} ({service}.{op})")
            raise FunctionKilled(f"{run.function} killed before {service}.{op} ({KILLED_MARK})")
        run.calls += 1
        plan = self.plan
        if service not in plan.services or (plan.operations and op not in plan.operations):
            return None
        if plan.throttle <= 0 and plan.errors <= 0:
            return None
        attempts = _attempts(context) if plan.sdk_retries else 1
        fault: tuple[str, int] | None = None
        for _attempt in range(attempts):
            draw = self.rng.random()
            if draw < plan.throttle:
                fault = (_THROTTLE_CODES.get(service, "ThrottlingException"), 400)
            elif draw < plan.throttle + plan.errors:
                fault = _SERVER_ERRORS[self.rng.randrange(len(_SERVER_ERRORS))]
            else:
                return None  # an attempt went through
        assert fault is not None
        code, status = fault
        self.log.append(f"{code} {run.function} {service}.{op}")
        return _Response(status), {
            "Error": {"Code": code, "Message": f"{INJECTED_MARK} ({code})"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": attempts - 1},
        }

    def starting(self, fn: str) -> _Run:
        self.runs[fn] += 1
        run = _Run(fn)
        for point in self.plan.kills:
            if point.function == fn and point.invocation == self.runs[fn]:
                run.die_at = point.after_calls
        if run.die_at is None and self.plan.kill > 0 and self.rng.random() < self.plan.kill:
            run.die_at = self.rng.randint(0, self.plan.kill_max_calls)
        return run

    # --- event delivery ----------------------------------------------------------------------------

    def copies(self, event: Mapping[str, Any]) -> list[float]:
        """The delays at which ``event`` reaches the bus: [] lost, [0.0] once on time, more: repeated."""
        plan = self.plan
        what = f"{event.get('detail-type', '?')} {event.get('id', '')}"
        if plan.lose > 0 and self.rng.random() < plan.lose:
            self.log.append(f"lost {what}")
            return []
        n = 1
        if plan.duplicate > 0 and self.rng.random() < plan.duplicate:
            n = self.rng.choice((2, 3))
            self.log.append(f"duplicated x{n} {what}")
        delays = []
        for _ in range(n):
            delay = 0.0
            if plan.late > 0 and self.rng.random() < plan.late:
                delay = round(self.rng.uniform(1.0, max(1.0, plan.max_delay)), 1)
                self.log.append(f"late {delay:g}s {what}")
            delays.append(delay)
        return delays


@dataclass
class _Response:
    """What botocore reads of an HTTP response a before-call handler returns."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""


def _attempts(context: Mapping[str, Any] | None) -> int:
    config = (context or {}).get("client_config")
    retries = getattr(config, "retries", None) or {}
    if "total_max_attempts" in retries:
        return max(1, int(retries["total_max_attempts"]))
    if "max_attempts" in retries:
        extra = 0 if retries.get("mode") in {"standard", "adaptive"} else 1
        return max(1, int(retries["max_attempts"]) + extra)
    return 3 if retries.get("mode") in {"standard", "adaptive"} else _LEGACY_ATTEMPTS


def install(cloud: Any, plan: FaultPlan) -> Faults:
    """Make ``cloud`` (an open, provisioned LocalCloud) apply ``plan`` from now on."""
    faults = Faults(plan, random.Random(plan.seed))  # noqa: S311 - a reproducible simulation
    cloud.session._session.register("before-call", faults.before_call)

    call = cloud._call

    def killable(fn: str, event: dict[str, Any]) -> tuple[Any, BaseException | None, float]:
        faults.stack.append(faults.starting(fn))
        try:
            return call(fn, event)  # type: ignore[no-any-return]
        except FunctionKilled as exc:
            return None, FunctionCrashed(str(exc)), 0.0
        finally:
            faults.stack.pop()

    cloud._call = killable

    route = cloud._route

    def deliver_faulted(event: dict[str, Any]) -> None:
        for delay in faults.copies(event):
            if delay <= 0:
                route(event)
            else:
                cloud.clock.call_later(delay, lambda: route(event))

    cloud._route = deliver_faulted
    return faults


def merge(plan: FaultPlan | None, overrides: Mapping[str, Any]) -> FaultPlan | None:
    """``plan`` with the given fields replaced (the CLI's flags over a scenario's ``faults:``)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return plan
    base = plan.model_dump() if plan is not None else {}
    return FaultPlan.model_validate({**base, **given})


def describe(plan: FaultPlan) -> str:
    parts: Iterable[str] = (
        f"{name} {getattr(plan, name):g}"
        for name in ("throttle", "errors", "kill", "duplicate", "late", "lose")
        if getattr(plan, name) > 0
    )
    text = ", ".join(parts)
    if plan.kills:
        text += (", " if text else "") + f"{len(plan.kills)} kill point(s)"
    return text or "no faults"
