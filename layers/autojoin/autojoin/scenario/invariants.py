"""The architecture's invariants, checked on what the local cloud recorded (docs/scenarios.md, "Verdict").

Only autojoin's OWN actions can break an invariant. A crash, an AZ outage or a user's terminate is the
world's doing: quorum lost right after one is an expected fact, reported but never a violation.

Rules:
- ``lifecycle-twice``: a lifecycle action (token) completed more than once.
- ``lifecycle-timeout``: an action of the cluster's groups finished by its hook's timeout — autojoin saw
  it (the template routes it) and did not complete it in time.
- ``lifecycle-unfinished``: an action still waiting when the scenario ended (after settling).
- ``token-leak``: a join token (``SWMTKN-…``) in a recorded AWS call outside a secret field (the
  recorder's redaction mark in an SSM command, say), in a function's return value or in a log line — or
  the logger's scrubber mark in a log line (code handed the logger a token; the scrubber caught it).
- ``quorum-lost``: the swarm had a leader before one of autojoin's functions ran and none after it
  (checked around every invocation), or before a step that is autojoin's doing (one of its functions ran
  in it, and it is not a disruption) and none after it (what the group did on its answers included).
- ``az-tolerance``: after such an invocation or step the managers survive fewer AZ losses than both before and
  the best layout of that many managers over the zones still up.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autojoin.domain.placement import optimal_layout
from autojoin.domain.quorum import zone_failures_tolerated
from autojoin.errors import PlacementError
from autojoin.scenario.observe import ClusterState

TOKEN = re.compile(r"SWMTKN-1-[0-9A-Za-z]")
REDACTED = "***"
SCRUBBED = "[REDACTED-TOKEN]"  # autojoin.observability's scrubber mark
SECRET_KEYS = frozenset({"secretstring", "secretbinary", "token", "jointoken", "password"})
TIMEOUTS = frozenset({"heartbeat-timeout", "global-timeout"})


@dataclass(frozen=True)
class Violation:
    rule: str
    detail: str
    step: int | None = None  # 1-based step index; None: found at the end

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "detail": self.detail, "step": self.step}

    def __str__(self) -> str:
        where = f"step {self.step}: " if self.step is not None else ""
        return f"{where}{self.rule}: {self.detail}"


def _secret_key(key: object) -> bool:
    low = str(key).lower()
    return low in SECRET_KEYS or low.endswith("jointoken") or low.endswith("secretstring")


def _leaks(value: Any, path: str = "") -> Iterable[str]:
    """Paths in ``value`` where a token (or the redactor's mark for one in free text) sits."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if _secret_key(k):
                continue  # a secret field: the recorder redacts it, and it is meant to hold a token
            yield from _leaks(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _leaks(v, f"{path}[{i}]")
    elif isinstance(value, str):
        if TOKEN.search(value) or REDACTED in value:
            yield path or "(value)"
    elif isinstance(value, bytes | bytearray) and b"SWMTKN-1-" in value:
        yield path or "(value)"


def lifecycle_violations(records: Sequence[Any], groups: Iterable[str]) -> list[Violation]:
    """Completed twice, or left to time out, among the actions of the cluster's groups."""
    mine = set(groups)
    out: list[Violation] = []
    by_api = Counter(
        (r.token or f"{r.instance_id}/{r.hook}/{r.transition}")
        for r in records
        if r.group in mine and r.by == "api"
    )
    for key, n in by_api.items():
        if n > 1:
            out.append(Violation("lifecycle-twice", f"lifecycle action {key} completed {n} times"))
    for r in records:
        if r.group in mine and r.by in TIMEOUTS:
            kind = "launch" if "LAUNCHING" in r.transition else "terminate"
            out.append(
                Violation(
                    "lifecycle-timeout",
                    f"{kind} action of {r.instance_id} ({r.group}) was not completed: {r.by} -> {r.result}",
                )
            )
    return out


def unfinished_violations(state: ClusterState) -> list[Violation]:
    out = []
    for group, states in state.groups.items():
        for s in ("Pending:Wait", "Terminating:Wait"):
            if states.get(s):
                out.append(
                    Violation("lifecycle-unfinished", f"{states[s]} instance(s) of {group} still in {s}")
                )
    return out


def token_violations(
    calls: Sequence[Any], invocations: Sequence[Any], log_lines: Sequence[str], decisions: Sequence[Any] = ()
) -> list[Violation]:
    out: list[Violation] = []
    for call in calls:
        for where in _leaks(call.params):
            out.append(Violation("token-leak", f"a join token in {call.service}.{call.operation} {where}"))
    for inv in invocations:
        for where in _leaks(getattr(inv, "result", None)):
            out.append(
                Violation("token-leak", f"a join token in the return value of {inv.function} ({where})")
            )
    for decision in decisions:
        for where in _leaks(decision):
            out.append(Violation("token-leak", f"a join token in a decision ({where})"))
    for n, line in enumerate(log_lines, start=1):
        if TOKEN.search(line):
            out.append(Violation("token-leak", f"a join token in log line {n}"))
        elif SCRUBBED in line:  # the logger's last line of defence fired: code handed it a token
            out.append(Violation("token-leak", f"a join token reached the logger (scrubbed) in log line {n}"))
    return out


def best_zone_tolerance(managers: int, zones: Sequence[str]) -> int:
    """The most AZ losses ``managers`` managers can survive over ``zones``."""
    if managers < 1 or not zones:
        return 0
    try:
        return zone_failures_tolerated(optimal_layout(managers, zones))
    except PlacementError:
        return 0


def step_violations(
    before: ClusterState, after: ClusterState, step: int, *, disruptive: bool, autojoin_acted: bool
) -> list[Violation]:
    """Quorum and AZ tolerance across one step that is autojoin's doing: one of its functions ran in it,
    and it is not a disruption (crash, AZ outage, a user's terminate)."""
    if disruptive or not autojoin_acted:
        return []
    out = []
    if before.has_leader and not after.has_leader:
        out.append(
            Violation(
                "quorum-lost",
                f"the swarm had a leader before this step and has none after it "
                f"({before.managers} -> {after.managers} healthy managers)",
                step,
            )
        )
    if before.has_leader and after.managers > 0:
        up_zones = [z for z in after.zones if z not in after.down_zones]
        was = before.zone_failures_now
        now = after.zone_failures_now
        best = best_zone_tolerance(after.managers, up_zones)
        if now < min(was, best):
            out.append(
                Violation(
                    "az-tolerance",
                    f"managers {_layout(after.layout)} survive {now} AZ loss(es); "
                    f"{_layout(before.layout)} survived {was}; {after.managers} managers can survive {best}",
                    step,
                )
            )
    return out


def invocation_violations(
    fn: str, before: ClusterState, after: ClusterState, step: int | None
) -> list[Violation]:
    """Quorum and AZ tolerance across one invocation of an autojoin function: autojoin's doing, unless the
    world struck while it ran (a handler that waits lets simulated time pass: a machine may go down)."""
    up_before = {m.instance_id for m in before.members if m.up}
    struck = any(not m.up and m.instance_id in up_before for m in after.members)
    if struck or set(after.down_zones) - set(before.down_zones):
        return []
    found = step_violations(before, after, step or 0, disruptive=False, autojoin_acted=True)
    return [
        Violation(
            v.rule,
            f"{fn}: {v.detail.replace('before this step', 'before it ran').replace('after it', 'after')}",
            step,
        )
        for v in found
    ]


def _layout(layout: Mapping[str, int]) -> str:
    return "-".join(str(v) for v in layout.values()) or "0"
