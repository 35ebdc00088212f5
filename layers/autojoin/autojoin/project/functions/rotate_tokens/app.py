"""rotate_tokens: Secrets Manager rotation (create/set/test/finishSecret) of one role's join token."""

from __future__ import annotations

from typing import Any

from autojoin.bootstrap import Deps, production_deps
from autojoin.entrypoints import rotate_tokens
from autojoin.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: Any, deps: Deps | None = None) -> dict[str, str]:
    return rotate_tokens(event, deps or production_deps())
