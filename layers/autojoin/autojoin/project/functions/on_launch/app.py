"""on_launch: EventBridge launch lifecycle action → join the instance into its cluster, then CONTINUE."""

from __future__ import annotations

from typing import Any

from autojoin.bootstrap import Deps, production_deps
from autojoin.entrypoints import on_launch
from autojoin.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # responses never hold tokens; belt and braces
def lambda_handler(event: dict[str, Any], context: Any, deps: Deps | None = None) -> dict[str, Any]:
    return on_launch(event, context, deps or production_deps())
