"""rotate_tokens: Secrets Manager rotation (create/set/test/finishSecret) of one role's join token.

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
def lambda_handler(event: dict[str, Any], context: Any, deps: Deps | None = None) -> dict[str, str]:
    from autojoin.bootstrap import production_deps
    from autojoin.entrypoints import rotate_tokens

    return rotate_tokens(event, deps or production_deps())
