"""The one place that holds the Powertools Logger, Metrics and Tracer singletons.

A logging filter scrubs anything shaped like a Swarm join token from every record, as a last line of
defence: the code never logs tokens (they travel as SecretStr), and tests prove it.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "autojoin"
NAMESPACE = "Autojoin"
TOKEN_PATTERN = re.compile(r"SWMTKN-1-[0-9a-zA-Z]+-[0-9a-zA-Z]+")
REDACTED = "[REDACTED-TOKEN]"


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a record is emitted (Lambda: the log stream), not to the
    stream that was current at import time — which a test runner, the local cloud or the CLI may have
    swapped and closed since."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


logger = Logger(service=SERVICE, logger_handler=_StdoutHandler())
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)

__all__ = [
    "NAMESPACE",
    "REDACTED",
    "TOKEN_PATTERN",
    "MetricUnit",
    "gauge",
    "logger",
    "metrics",
    "redact",
    "single_metric",
    "tracer",
]


def redact(text: str) -> str:
    return TOKEN_PATTERN.sub(REDACTED, text)


class _TokenScrubber(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


logger.addFilter(_TokenScrubber())


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Add one metric; dimensions go in as metadata (keeps cardinality low)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for key, val in dimensions.items():
        metrics.add_metadata(key=key, value=val)


def gauge(name: str, value: float) -> None:
    """A level, not an event (QuorumMargin, HealthyManagers...): one value per run, alarms read Minimum."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
