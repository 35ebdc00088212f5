"""reconcile: schedule tick or launch/terminate result → one reconcile pass (snapshot, metrics, repairs, at
most one rebalance step)."""

from __future__ import annotations

from typing import Any

from autojoin.bootstrap import Deps, production_deps
from autojoin.entrypoints import reconcile
from autojoin.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # the report holds no token; belt and braces
def lambda_handler(event: dict[str, Any], context: Any, deps: Deps | None = None) -> dict[str, Any]:
    return reconcile(event, context, deps or production_deps())
