"""on_terminate: terminate lifecycle actions of both groups (graceful removal) and the guard's schedule."""

from __future__ import annotations

from typing import Any

from autojoin.bootstrap import Deps, production_deps
from autojoin.entrypoints import on_terminate
from autojoin.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: Any, deps: Deps | None = None) -> dict[str, Any]:
    return on_terminate(event, context, deps or production_deps())
