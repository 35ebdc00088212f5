"""The one place that holds the Powertools Logger, Metrics and Tracer singletons.

Cheap at import (a handler's cold start): Logger and Metrics only. The Tracer — and with it the X-Ray SDK,
which patches botocore — is built on a handler's first invocation (``tracer`` is a lazy stand-in), so
Active tracing keeps its subsegments without the SDK on the import path.

Last line of defence against a token in a log line (the code never logs tokens: they travel as
SecretStr, and tests prove it): the handler scrubs the FINAL formatted line — message, args, ``extra=``,
appended keys, exception tracebacks, dict messages alike — and so does every handler on the root logger.
botocore, boto3 and urllib3 (whose DEBUG output holds request and response bodies) are pinned to
WARNING whatever the function's log level.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit, single_metric

if TYPE_CHECKING:
    from aws_lambda_powertools.tracing import Tracer

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


class _OnDemandClient:
    """A botocore client made on first attribute access (see ``_xray_sampling_client_on_demand``)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._make()
        return getattr(self._client, name)


@contextlib.contextmanager
def _xray_sampling_client_on_demand() -> Iterator[None]:
    """While the X-Ray SDK initialises, its sampling connector's botocore "xray" client is made on first
    use instead of at once. Creating it loads the endpoint and service models: about 85% of the SDK's
    start-up (aws-xray-sdk-python issues 273 and 311). In Lambda the client is never used (Lambda makes the
    sampling decision; the centralized sampling poller never starts), elsewhere it is made when needed."""
    from botocore.session import Session

    create = Session.create_client

    def create_client(session: Session, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if service_name == "xray":
            return _OnDemandClient(lambda: create(session, service_name, *args, **kwargs))
        return create(session, service_name, *args, **kwargs)

    Session.create_client = create_client  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Session.create_client = create  # type: ignore[method-assign]


class LazyTracer:
    """Stands in for the Powertools ``Tracer``: the real one (X-Ray SDK import, botocore patching) is built
    on first use, i.e. a handler's first invocation, not when the handler module is imported. Decorating
    with ``capture_lambda_handler`` costs nothing at import; any other attribute builds the real tracer."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._tracer: Tracer | None = None

    @property
    def real(self) -> Tracer:
        if self._tracer is None:
            from aws_lambda_powertools.tracing import Tracer

            with _xray_sampling_client_on_demand():
                self._tracer = Tracer(service=self._service)
        return self._tracer

    @property
    def built(self) -> bool:
        return self._tracer is not None

    def capture_lambda_handler(
        self, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
            traced: list[Callable[..., Any]] = []

            @functools.wraps(handler)
            def run(event: Any, context: Any, **kwargs: Any) -> Any:
                if not traced:
                    traced.append(
                        self.real.capture_lambda_handler(
                            handler, capture_response=capture_response, capture_error=capture_error
                        )
                    )
                return traced[0](event, context, **kwargs)

            return run

        return decorate

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


tracer = LazyTracer(SERVICE)

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
