"""What each Lambda handler does between the Powertools decorators and its use case.

Handlers (functions/*/app.py) stay thin: decorators, then one call here. Rules:
- Bad input is logged, counted and answered with the safe result; it never raises (no retry loop).
- Transient AWS errors propagate so Lambda's async retries and the failure destination catch them.
- Launch actions are idempotent on their LifecycleActionToken (Powertools idempotency, DynamoDB).
"""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

from autojoin.bootstrap import Deps
from autojoin.domain.model import LifecycleAction, LifecycleKind, Role
from autojoin.errors import BadInput, JoinDeferred
from autojoin.events import lifecycle_action
from autojoin.observability import NAMESPACE, MetricUnit, count, gauge, logger, metrics, single_metric
from autojoin.services.launch import Outcome
from autojoin.services.termination_policy import parse_policy_input

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
    if action.kind is LifecycleKind.LAUNCHING and action.hook != deps.settings.launch_hook:
        reason = f"hook {action.hook} is not autojoin's ({deps.settings.launch_hook}): not completed"
        logger.warning(reason, extra={"decision": "ignored", "hook": action.hook})
        count("HookIgnored", hook=action.hook)
        return {"outcome": "ignored", "reason": reason, "instance_id": action.instance_id}

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


def reconcile(event: Any, context: Any, deps: Deps) -> dict[str, Any]:
    """Any event runs one reconcile pass (a schedule tick, a launch/terminate result): the event only says
    why it ran. Metrics: HealthyManagers, QuorumMargin, ZoneFailuresTolerated, PendingJoins, LeaderAz (one
    per AZ, 1 where the leader is), RetainedInstances."""
    why = event.get("detail-type", "unknown") if isinstance(event, dict) else "unknown"
    logger.append_keys(cluster=deps.settings.cluster)
    metrics.add_dimension(name="cluster", value=deps.settings.cluster)
    report = deps.reconcile.run()
    out = report.to_dict()
    gauge("RetainedInstances", len(report.retained))
    gauge("PendingJoins", report.pending_joins)
    if report.has_leader:
        gauge("HealthyManagers", report.healthy_managers)
        gauge("ZoneFailuresTolerated", report.zone_failures_tolerated)
    gauge("QuorumMargin", report.quorum_margin)
    if report.has_leader and report.leader_az:
        with single_metric(
            name="LeaderAz", unit=MetricUnit.Count, value=1, namespace=NAMESPACE
        ) as leader_metric:
            leader_metric.add_dimension(name="cluster", value=deps.settings.cluster)
            leader_metric.add_dimension(name="az", value=report.leader_az)
    fields = {
        k: out[k] for k in ("dry_run", "has_leader", "quorum_margin", "zone_failures_tolerated", "target")
    }
    log = logger.warning if not report.has_leader or report.quorum_margin <= 0 else logger.info
    log(
        out["step"] or "reconciled",
        extra={"decision": "reconcile", "trigger": why, **fields, "actions": out["actions"]},
    )
    count("ReconcileRun")
    return out


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


# --- the quorum guard ------------------------------------------------------------------------------

_REMOVAL_METRIC = {
    "removed": "NodeRemoved",
    "not_member": "RemovalNotMember",
    "warm_pool": "WarmPoolTerminate",
    "waiting": "ScaleInBlocked",
    "retained": "ManagerRetained",
    "ignored": "HookIgnored",
    "gone": "TerminateGone",
}


def _holder(context: Any, what: str) -> str:
    """Who holds the lease: this invocation (its request id; a fresh id outside Lambda)."""
    request = getattr(context, "aws_request_id", None) or uuid.uuid4().hex
    return f"{what}:{request}"


def termination_policy(event: Any, context: Any, deps: Deps) -> dict[str, list[str]]:
    """Auto Scaling's custom termination policy: one state read, no orchestrator call, answer at once."""
    try:
        given = parse_policy_input(event)
    except BadInput as exc:
        logger.error("rejected termination policy input", extra={"error": str(exc), "error_type": "BadInput"})
        count("BadInput")
        return {"InstanceIDs": []}  # the safe answer: nothing may go
    logger.append_keys(cluster=deps.settings.cluster, asg=given.group)
    decision = deps.termination_policy.decide(given)
    fields = {"decision": "termination_policy", **decision.to_log()}
    if decision.role is Role.MANAGER and decision.refused:
        logger.warning(decision.reason, extra=fields)
        count("ScaleInBlocked", value=len(decision.refused), cause=given.cause)
    else:
        logger.info(decision.reason, extra=fields)
    if decision.stale:
        count("SnapshotStale")
    count("TerminationAllowed", value=len(decision.instance_ids), cause=given.cause)
    if decision.margin_after is not None:
        count("QuorumMargin", value=decision.margin_after)
    return decision.answer()


def on_terminate(event: Any, context: Any, deps: Deps) -> dict[str, Any]:
    """Terminate lifecycle actions of both groups, and the guard's schedule (a Scheduled Event)."""
    if isinstance(event, dict) and event.get("detail-type") == "Scheduled Event":
        return guard_tick(context, deps)
    try:
        action = lifecycle_action(event)
    except BadInput as exc:
        logger.error("rejected terminate input", extra={"error": str(exc), "error_type": "BadInput"})
        count("BadInput")
        return {"outcome": "rejected", "reason": str(exc)}
    logger.append_keys(cluster=deps.settings.cluster, instance_id=action.instance_id, asg=action.group)
    decision = deps.removal.handle(action, _holder(context, f"terminate:{action.instance_id}"))
    _report_removal(decision.to_dict())
    for other in decision.also:
        _report_removal(other.to_dict())
    return decision.to_dict()


def _report_removal(decision: dict[str, Any]) -> None:
    outcome = str(decision["outcome"])
    fields = {k: v for k, v in decision.items() if k not in {"reason", "also"} and v not in (None, [], "")}
    if outcome == "retained":
        logger.error(decision["reason"], extra={"decision": outcome, **fields})
    elif outcome in {"waiting", "ignored"}:
        logger.warning(decision["reason"], extra={"decision": outcome, **fields})
    else:
        logger.info(decision["reason"], extra={"decision": outcome, **fields})
    name = _REMOVAL_METRIC[outcome]
    if outcome == "removed":
        name = "ManagerRemoved" if decision.get("role") == "manager" else "WorkerRemoved"
    count(name, role=str(decision.get("role") or ""))
    if decision.get("margin_after") is not None:
        count("QuorumMargin", value=float(decision["margin_after"]))


def guard_tick(context: Any, deps: Deps) -> dict[str, Any]:
    """The guard's periodic pass: waiting removals, dead nodes, scale-in protection."""
    logger.append_keys(cluster=deps.settings.cluster)
    report = deps.removal.tick(_holder(context, "guard"))
    for decision in report.resumed:
        _report_removal(decision.to_dict())
    for dead in report.dead:
        extra = {"decision": "dead_node", "node_id": dead.node_id, "instance_id": dead.instance_id}
        if dead.removed:
            logger.info(f"dead node removed: {dead.reason}", extra=extra)
            count("DeadNodeRemoved", role=dead.role.value)
        else:
            logger.warning(f"dead node kept: {dead.reason}", extra=extra)
            count("DeadNodeKept", role=dead.role.value)
    if report.released:
        logger.info(
            "scale-in protection lifted from the manager the guard chose",
            extra={"decision": "protection_lifted", "instance_id": report.released},
        )
        count("ProtectionLifted")
    if report.blocked:
        logger.warning(report.blocked, extra={"decision": "scale_in_blocked"})
        count("ScaleInBlocked", cause="SCALE_IN")
    if report.error:
        logger.warning("guard pass: the swarm does not answer", extra={"error_type": report.error})
        count("GuardPassFailed")
    if report.margin is not None:
        count("QuorumMargin", value=float(report.margin))
    return report.to_dict()
