"""termination_policy: the custom termination policy of both groups (synchronous, 2 s budget).

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
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: Any, deps: Deps | None = None) -> dict[str, list[str]]:
    from autojoin.bootstrap import production_deps
    from autojoin.entrypoints import termination_policy

    return termination_policy(event, context, deps or production_deps())
