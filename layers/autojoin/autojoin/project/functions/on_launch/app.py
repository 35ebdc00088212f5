"""on_launch: EventBridge launch lifecycle action → join the instance into its cluster, then CONTINUE.

Cold start: importing this module loads only the Powertools Logger and Metrics; the use case
(autojoin.entrypoints, the composition root, pydantic models) loads on the first invocation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autojoin.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from autojoin.bootstrap import Deps


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # responses never hold tokens; belt and braces
def lambda_handler(event: dict[str, Any], context: Any, deps: Deps | None = None) -> dict[str, Any]:
    from autojoin.bootstrap import production_deps
    from autojoin.entrypoints import on_launch

    return on_launch(event, context, deps or production_deps())
