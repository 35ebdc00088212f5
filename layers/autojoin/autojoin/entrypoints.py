"""What each Lambda handler does between the Powertools decorators and its use case.

Handlers (functions/*/app.py) stay thin: decorators, then one call here. Rules:
- Bad input is logged, counted and answered with the safe result; it never raises (no retry loop).
- Transient AWS errors propagate so Lambda's async retries and the failure destination catch them.
- Launch actions are idempotent on their LifecycleActionToken (Powertools idempotency, DynamoDB).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

from autojoin.bootstrap import Deps
from autojoin.domain.model import LifecycleAction, LifecycleKind
from autojoin.errors import BadInput, JoinDeferred
from autojoin.events import lifecycle_action
from autojoin.observability import count, logger
from autojoin.services.launch import Outcome

_LAUNCH_METRIC = {
    Outcome.JOINED: "JoinCompleted",
    Outcome.ALREADY_MEMBER: "JoinCompleted",
    Outcome.BOOTSTRAPPED: "ClusterBootstrapped",
    Outcome.PENDING: "JoinPending",
    Outcome.WARM_POOL: "WarmPoolLaunch",
    Outcome.IGNORED: "LaunchIgnored",
    Outcome.GONE: "LaunchGone",
    Outcome.ABANDONED: "JoinAbandoned",
}


def on_launch(event: Any, context: Any, deps: Deps) -> dict[str, Any]:
    try:
        action = lifecycle_action(event)
    except BadInput as exc:
        logger.error("rejected launch input", extra={"error": str(exc), "error_type": "BadInput"})
        count("BadInput")
        return {"outcome": "rejected", "reason": str(exc)}
    logger.append_keys(cluster=deps.settings.cluster, instance_id=action.instance_id, asg=action.group)
    logger.debug("launch action", extra={"action": action.model_dump(mode="json")})

    config = IdempotencyConfig(
        event_key_jmespath="token", expires_after_seconds=deps.settings.idempotency_ttl
    )
    time_left = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        config.register_lambda_context(context)

        def time_left() -> float:
            return float(context.get_remaining_time_in_millis()) / 1000

    def run(payload: dict[str, Any]) -> dict[str, Any]:
        action = LifecycleAction.model_validate(payload)
        return deps.launch.handle(action, time_left=time_left).to_dict()

    once = idempotent_function(
        data_keyword_argument="payload", persistence_store=deps.idempotency, config=config
    )
    # a TEST_NOTIFICATION has no lifecycle action token and nothing to do twice: no idempotency record
    guarded = run if action.kind is LifecycleKind.TEST else once(run)
    try:
        decision: dict[str, Any] = guarded(payload=action.model_dump(mode="json"))
    except JoinDeferred as exc:
        logger.warning(str(exc), extra={"decision": "deferred"})
        count("JoinDeferred")
        raise  # on purpose: Lambda's async retry tries again; the hook is kept alive meanwhile
    logger.debug("launch decision", extra={"decision_detail": decision})
    _report_launch(decision)
    for other in decision.get("also_joined", []):
        _report_launch(other)
    return decision


def _report_launch(decision: dict[str, Any]) -> None:
    outcome = Outcome(decision["outcome"])
    fields = {
        k: decision[k] for k in ("instance_id", "role", "az", "result", "completion", "error") if decision[k]
    }
    if outcome is Outcome.ABANDONED:
        logger.error(decision["reason"], extra={"decision": outcome.value, **fields})
    elif decision["error"]:  # waiting because something is wrong (no leader, no manager answers)
        logger.warning(decision["reason"], extra={"decision": outcome.value, **fields})
    else:
        logger.info(decision["reason"], extra={"decision": outcome.value, **fields})
    count(_LAUNCH_METRIC[outcome], role=str(decision.get("role") or ""))


def rotate_tokens(event: Any, deps: Deps) -> dict[str, str]:
    if not isinstance(event, dict) or not all(
        isinstance(event.get(k), str) for k in ("SecretId", "ClientRequestToken", "Step")
    ):
        logger.error("rejected rotation input", extra={"error_type": "BadInput"})
        count("BadInput")
        raise BadInput("rotation event needs SecretId, ClientRequestToken and Step")
    logger.debug("rotation step", extra={"step": event["Step"], "version_id": event["ClientRequestToken"]})
    try:
        decision = deps.rotation.handle(event["SecretId"], event["ClientRequestToken"], event["Step"])
    except Exception as exc:
        logger.error("rotation step failed", extra={"step": event["Step"], "error_type": type(exc).__name__})
        count("RotationFailed")
        raise
    logger.info(decision.action, extra=decision.to_dict())
    count("RotationStep", step=decision.step.value, role=decision.role.value)
    return decision.to_dict()
