"""termination_policy: the custom termination policy of both groups (synchronous, 2 s budget)."""

from __future__ import annotations

from typing import Any

from autojoin.bootstrap import Deps, production_deps
from autojoin.entrypoints import termination_policy
from autojoin.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: Any, deps: Deps | None = None) -> dict[str, list[str]]:
    return termination_policy(event, context, deps or production_deps())
