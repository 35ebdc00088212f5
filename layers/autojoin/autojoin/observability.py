"""The one place that holds the Powertools Logger, Metrics and Tracer singletons.

Last line of defence against a token in a log line (the code never logs tokens: they travel as
SecretStr, and tests prove it): the handler scrubs the FINAL formatted line — message, args, ``extra=``,
appended keys, exception tracebacks, dict messages alike — and so does every handler on the root logger.
botocore, boto3 and urllib3 (whose DEBUG output holds request and response bodies) are pinned to
WARNING whatever the function's log level.
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
TOKEN_PATTERN = re.compile(r"SWMTKN-[0-9a-zA-Z-]+")
REDACTED = "[REDACTED-TOKEN]"
QUIET_LOGGERS = ("botocore", "boto3", "urllib3")  # DEBUG there logs request/response bodies


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a record is emitted (Lambda: the log stream), not to the
    stream that was current at import time — which a test runner, the local cloud or the CLI may have
    swapped and closed since."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

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
    "harden_logging",
    "logger",
    "metrics",
    "redact",
    "single_metric",
    "tracer",
]


def redact(text: str) -> str:
    return TOKEN_PATTERN.sub(REDACTED, text)


class _RootScrubber(logging.Filter):
    """On the root logger's handlers (Lambda's own, a test's): the record is rendered and scrubbed before
    any of them formats it — the message with its args, and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_FIELDS and isinstance(value, str):  # extra=
                record.__dict__[key] = redact(value)
        return True


_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_ROOT_SCRUBBER = _RootScrubber()


def harden_logging() -> None:
    """Pin the chatty AWS loggers to WARNING and scrub every root handler (idempotent; call again after
    something adds a root handler)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if _ROOT_SCRUBBER not in handler.filters:
            handler.addFilter(_ROOT_SCRUBBER)


harden_logging()


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Add one metric; dimensions go in as metadata (keeps cardinality low)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for key, val in dimensions.items():
        metrics.add_metadata(key=key, value=val)


def gauge(name: str, value: float) -> None:
    """A level, not an event (QuorumMargin, HealthyManagers...): one value per run, alarms read Minimum."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
