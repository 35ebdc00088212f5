"""What the local cloud records: AWS calls (redacted), invocations, lifecycle completions, failures."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

REDACTED = "***"
_TOKEN_RE = re.compile(r"SWMTKN-1-[A-Za-z0-9-]*")
# Parameter names whose values are secrets, whatever they look like.
_SECRET_KEYS = frozenset({"secretstring", "secretbinary", "token", "jointoken", "password"})


def _secret_key(key: str) -> bool:
    low = key.lower()
    return low in _SECRET_KEYS or low.endswith("jointoken") or low.endswith("secretstring")


@dataclass(frozen=True)
class Delivery:
    """One event that went through the bus: which rules matched it and which functions it reached."""

    event_id: str
    detail_type: str
    at: datetime
    rules: tuple[str, ...]
    functions: tuple[str, ...]


def redact(value: Any) -> Any:
    """A deep copy of ``value`` with secret fields and any ``SWMTKN-1-…`` text replaced by ``***``."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _secret_key(k) else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return REDACTED if b"SWMTKN-1-" in value else f"<{len(value)} bytes>"
    if isinstance(value, str):
        return _TOKEN_RE.sub(REDACTED, value) if "SWMTKN-1-" in value else value
    return value


@dataclass(frozen=True)
class AwsCall:
    """One AWS API call made through ``cloud.session`` (params redacted)."""

    service: str
    operation: str
    params: dict[str, Any]
    at: datetime
    function: str | None = None  # the function running when the call was made, if any


@dataclass(frozen=True)
class Invocation:
    """One invocation of a template function."""

    function: str
    event_id: str
    attempt: int  # 1 = first try
    outcome: str  # "ok" | "error" | "over-budget"
    at: datetime
    kind: str = "async"  # "async" (event), "sync" (direct invoke), "termination-policy"
    error_type: str | None = None
    result: Any = None
    elapsed_seconds: float = 0.0  # simulated + measured wall time


@dataclass(frozen=True)
class LifecycleRecord:
    """A lifecycle action that finished: by a CompleteLifecycleAction call or by a timeout."""

    instance_id: str
    group: str
    hook: str
    transition: str  # autoscaling:EC2_INSTANCE_LAUNCHING | autoscaling:EC2_INSTANCE_TERMINATING
    result: str  # CONTINUE | ABANDON
    by: str  # "api" | "heartbeat-timeout" | "global-timeout"
    at: datetime
    token: str = ""
    caller: str | None = None  # for "api": the function (or node:<id>) that called, None from outside


@dataclass(frozen=True)
class PolicyCall:
    """One call of a group's custom termination policy."""

    group: str
    cause: str
    input: dict[str, Any]
    answer: list[str] | None  # None: no usable answer (error, over budget, malformed)
    accepted: list[str]
    at: datetime
    elapsed_seconds: float
    over_budget: bool = False


@dataclass
class TimelineEntry:
    at: datetime
    what: str
    detail: dict[str, Any] = field(default_factory=dict)
