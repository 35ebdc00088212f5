"""The event bus: events Auto Scaling emits and events put on the bus are matched against the template's
enabled rules and delivered to their targets (Lambda through its resource policy, SQS, the target's
dead-letter queue), asynchronously on the SimClock; ``rate(...)`` schedules fire on the clock."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Mapping
from typing import Any

from autojoin.localcloud.base import CloudBase
from autojoin.localcloud.patterns import matches
from autojoin.localcloud.provision import RuleSpec, TargetSpec
from autojoin.localcloud.records import Delivery, redact


class EventBus(CloudBase):
    """LocalCloud's EventBridge side."""

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


def _rate_seconds(expression: str | None) -> float | None:
    if not expression or not expression.startswith("rate(") or not expression.endswith(")"):
        return None
    amount, _, unit = expression[5:-1].strip().partition(" ")
    factor = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}.get(unit)
    if factor is None or not amount.isdigit():
        return None
    return float(int(amount) * factor)
