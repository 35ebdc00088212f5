"""Benchmark: AWS calls per event, cold and warm, counted at the botocore level on the local cloud.

A cluster (3 managers, 2 workers, the template's wiring) is provisioned on the local cloud; then the same
round of actions runs twice: scale the workers out by one and back in, the managers likewise, one guard
pass (the guard's Scheduled Event to OnTerminateFunction), one reconcile tick (the reconcile Scheduled
Event), and the four steps of a join-token rotation. In the first round every invocation is COLD (the
function's composition root, its clients and caches, is dropped before each invocation, as a new
execution environment has nothing); in the second every invocation is WARM (the environment kept).

Counting: a ``before-parameter-build`` hook (once per API call, with its parameters) on the botocore
session the local cloud builds for its functions (``cloud.session``) sees every API call a handler's
client makes, once per call (retries are not extra calls). A call is counted for the invocation running
when it is made; calls of the simulated node agent (its own principal) are not counted.

Beside each event type: the minimum the job needs (MINIMUM below, with the reason for each call), and a
sentence for every call above it (EXTRA). A call that neither table explains is reported as "not
explained" rather than hidden. Nothing is asserted.

    python scripts/bench_calls.py [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# event type -> {call: why the job cannot do without it}; each counts once. COLD_ONLY: needed only by a new
# execution environment (a warm one answers from its cache).
_LAUNCH_MIN = {
    "ec2.DescribeInstances": "the instance's zone and address: the event carries neither",
    "secretsmanager.GetSecretValue": "the role's join token",
    "dynamodb.PutItem hand-off": "the hand-off ticket the node agent takes the token from",
    "autoscaling.CompleteLifecycleAction": "CONTINUE: the instance goes into service",
}
_RECONCILE_MIN = {
    "autoscaling.DescribeAutoScalingGroups": "both groups with their instances and zones, in one call",
    "dynamodb.PutItem snapshot": "the snapshot the termination policy reads (its 2 s budget allows one read)",
}
MINIMUM: dict[str, dict[str, str]] = {
    "launch hook (worker)": _LAUNCH_MIN,
    "launch hook (manager)": _LAUNCH_MIN,
    "terminate hook (worker)": {
        "autoscaling.CompleteLifecycleAction": "CONTINUE once the node is drained and removed from the swarm",
    },
    "terminate hook (manager)": {
        "dynamodb.PutItem lease": (
            "the cluster's change lease: two managers removed at once could lose quorum"
        ),
        "autoscaling.CompleteLifecycleAction": "CONTINUE once the manager is demoted and removed",
    },
    "termination policy (worker)": {"dynamodb.GetItem snapshot": "the snapshot: which workers are drained"},
    "termination policy (manager)": {"dynamodb.GetItem snapshot": "the snapshot: quorum and zone layout"},
    "guard tick": {
        "dynamodb.Query removal": "the removals waiting on the swarm",
        "autoscaling.DescribeAutoScalingGroups": "both groups: hooks waiting, desired vs live, protection",
        "autoscaling.SetInstanceProtection": "this pass lifted protection from the manager it chose (the "
        "manager group had been scaled in)",
    },
    "reconcile tick": _RECONCILE_MIN,
    "launch result": _RECONCILE_MIN,
    "terminate result": _RECONCILE_MIN,
    "rotation: createSecret": {
        "secretsmanager.DescribeSecret": "the version's stages: is it AWSCURRENT already",
        "secretsmanager.GetSecretValue": (
            "the current token (the node rotates from it and stores the new one)"
        ),
    },
    "rotation: setSecret": {
        "secretsmanager.DescribeSecret": "the version's stages: is it AWSCURRENT already"
    },
    "rotation: testSecret": {
        "secretsmanager.DescribeSecret": "the version's stages: is it AWSCURRENT already",
        "secretsmanager.GetSecretValue": "the AWSPENDING token, to test it against the swarm",
    },
    "rotation: finishSecret": {
        "secretsmanager.DescribeSecret": "the version's stages: which version is AWSCURRENT",
        "secretsmanager.UpdateSecretVersionStage": "AWSCURRENT moved to the new version",
    },
}
COLD_ONLY = {
    ("launch hook (worker)", "secretsmanager.GetSecretValue"),
    ("launch hook (manager)", "secretsmanager.GetSecretValue"),
}

_LAUNCH_EXTRA = {
    "dynamodb.PutItem idempotency": "Powertools idempotency's INPROGRESS record: EventBridge delivers at "
    "least once, and a second delivery must not join the instance twice",
    "dynamodb.UpdateItem idempotency": "Powertools idempotency's COMPLETED record (the stored answer a "
    "redelivery gets)",
    "autoscaling.DescribeAutoScalingGroups": "first the group's tags (role and cluster: the event names only "
    "the group); after CONTINUE, both groups again for the snapshot",
    "autoscaling.DescribeAutoScalingInstances": "the instance's lifecycle state: a late or duplicate event "
    "must find its hook still open before completing it",
    "dynamodb.GetItem bootstrap": "is the cluster bootstrapped (the first manager initialises the swarm, "
    "every other instance joins)",
    "dynamodb.DeleteItem hand-off": "the ticket withdrawn once the node joined, so no copy of the token "
    "outlives the join (covers a node that never took it)",
    "dynamodb.DeleteItem pending": "the pending-join record removed (it lets the reconciler finish a launch "
    "whose handler died mid-join)",
    "dynamodb.PutItem snapshot": "the snapshot refreshed after the join, so the termination policy sees "
    "the new node",
    "dynamodb.Query pending": "other pending joins finished on the way (a launch whose handler ran out of "
    "time)",
}
_RECONCILE_EXTRA = {
    "ec2.DescribeInstances": "EC2 asked which of the groups' instances are shutting down or terminated (a "
    "machine that died outside Auto Scaling is still InService there until a health check); one call "
    "per 200 instances",
    "dynamodb.GetItem reconcile": "the reconciler's own record (its last plan): a flapping zone must not "
    "cause churn",
    "dynamodb.PutItem reconcile": "the reconciler's record written back (this plan, for the next run)",
    "dynamodb.Query pending": "pending joins (launches whose handler died) read before planning and again "
    "for the PendingJoins metric",
}
# event type -> {call: why it is made beyond the minimum}
EXTRA: dict[str, dict[str, str]] = {
    "launch hook (worker)": _LAUNCH_EXTRA,
    "launch hook (manager)": _LAUNCH_EXTRA,
    "terminate hook (worker)": {
        "autoscaling.DescribeAutoScalingGroups": "the group's tags: role and cluster (the event names only "
        "the group)",
        "autoscaling.DescribeAutoScalingInstances": "the hook still open (a late or duplicate event)",
        "ec2.DescribeInstances": "the instance's zone and state, for the decision and its log line",
        "dynamodb.DeleteItem removal": "the waiting-removal record deleted (written only when a removal has "
        "to wait; the delete is unconditional)",
    },
    "terminate hook (manager)": {
        "autoscaling.DescribeAutoScalingGroups": "the group's tags (role), the manager group's desired and "
        "live instances for the quorum decision, then both groups for the snapshot",
        "autoscaling.DescribeAutoScalingInstances": "the hook still open (a late or duplicate event)",
        "ec2.DescribeInstances": "the managers' zones, for the layout the removal must keep",
        "dynamodb.PutItem lease": "the lease renewed between the removal's steps (drain, demote, leave, rm)",
        "dynamodb.DeleteItem lease": "the lease released at once (the next change need not wait its TTL)",
        "dynamodb.DeleteItem removal": "the waiting-removal record deleted",
        "dynamodb.Query removal": "other waiting removals, worked on the way under the same lease",
        "dynamodb.PutItem snapshot": "the snapshot refreshed after the change, for the termination policy",
    },
    "guard tick": {
        "autoscaling.DescribeAutoScalingGroups": "the groups read again by a phase of the pass that does not "
        "share the pass's one read",
        "ec2.DescribeInstances": "EC2 asked which instances are shutting down or terminated (dead nodes: a "
        "machine that died outside Auto Scaling is still InService there until a health check)",
        "dynamodb.Query removal": "the waiting removals read by two phases (resume, then the sweep of "
        "unrecorded ones)",
        "dynamodb.PutItem lease": "the change lease taken for the pass's changes",
        "dynamodb.DeleteItem lease": "the lease released",
        "dynamodb.PutItem snapshot": "the snapshot refreshed every minute (dead nodes, leader)",
    },
    "reconcile tick": _RECONCILE_EXTRA,
    "launch result": _RECONCILE_EXTRA,
    "terminate result": _RECONCILE_EXTRA,
    "rotation: createSecret": {
        "secretsmanager.GetSecretValue": "AWSPENDING read first: a retried step must not rotate twice",
        "dynamodb.GetItem bootstrap": "no cluster yet means nothing to rotate",
        "dynamodb.PutItem lease": "the change lease: no join or removal while the token changes",
        "dynamodb.DeleteItem lease": "the lease released",
    },
    "rotation: testSecret": {
        "secretsmanager.GetSecretValue": "AWSCURRENT read too: there must be a current token to test against",
        "dynamodb.GetItem bootstrap": "no cluster yet means nothing to test",
    },
    "rotation: finishSecret": {
        "secretsmanager.DescribeSecret": "the stages read again by each stage move (AWSCURRENT, then "
        "AWSPENDING taken off), each checking before it moves",
        "secretsmanager.GetSecretValue": "the AWSPENDING token: is there one to promote",
        "secretsmanager.UpdateSecretVersionStage": "AWSPENDING taken off the new version (otherwise an "
        "AWSPENDING read keeps answering with the current token)",
    },
}
NOT_EXPLAINED = "not explained (no reason recorded in scripts/bench_calls.py)"


def _role(group: str) -> str:
    return "manager" if "manager" in group else "worker"


def classify(fn: str, event: Any) -> str:
    """The event type of one invocation (what the report groups by)."""
    ev = event if isinstance(event, dict) else {}
    kind = str(ev.get("detail-type", ""))
    group = str((ev.get("detail") or {}).get("AutoScalingGroupName", ev.get("AutoScalingGroupName", "")))
    if fn == "OnLaunchFunction" and "Lifecycle Action" in kind:
        return f"launch hook ({_role(group)})"
    if fn == "OnTerminateFunction" and kind == "Scheduled Event":
        return "guard tick"
    if fn == "OnTerminateFunction" and "Lifecycle Action" in kind:
        return f"terminate hook ({_role(group)})"
    if fn == "ReconcileFunction" and kind == "Scheduled Event":
        return "reconcile tick"
    if fn == "ReconcileFunction" and "Launch" in kind:
        return "launch result"
    if fn == "ReconcileFunction" and "Terminate" in kind:
        return "terminate result"
    if fn == "TerminationPolicyFunction":
        return f"termination policy ({_role(group)})"
    if "Step" in ev:
        return f"rotation: {ev['Step']}"
    return f"{fn}: {kind or 'other'}"


class Recorder:
    """Wraps the local cloud's function runner: each invocation's label, cold/warm, and its calls."""

    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self.cold = False
        self.current: list[str] | None = None
        self.running: str | None = None
        self.rows: list[dict[str, Any]] = []
        original = cloud._call

        def call(fn: str, event: dict[str, Any]) -> Any:
            if self.cold:
                cloud._deps.pop(fn, None)  # a new execution environment: nothing built, nothing cached
            was_cold = fn not in cloud._deps
            self.current, self.running = [], fn
            try:
                return original(fn, event)
            finally:
                self.rows.append(
                    {"event": classify(fn, event), "function": fn, "cold": was_cold, "calls": self.current}
                )
                self.current, self.running = None, None

        cloud._call = call
        cloud.session._session.register("before-parameter-build", self._hook)

    def _hook(self, model: Any, params: Any = None, **_: Any) -> None:
        running = self.cloud._running
        if self.current is not None and running and running[-1] == self.running:
            self.current.append(label(model.service_model.service_name, model.name, params or {}))


def label(service: str, operation: str, params: dict[str, Any]) -> str:
    """``service.Operation``; a DynamoDB call also names the record it touches (idempotency, snapshot,
    hand-off, lease, ...), so that the report can say why each one is made."""
    name = f"{service}.{operation}"
    if service != "dynamodb":
        return name
    key = params.get("Item") or params.get("Key") or {}
    if "principal" in key:
        return f"{name} hand-off"
    pk = str((key.get("pk") or {}).get("S", ""))
    sk = str((key.get("sk") or {}).get("S", ""))
    if pk.startswith("idempotency#"):
        return f"{name} idempotency"
    if sk:
        return f"{name} {sk.split('#', maxsplit=1)[0]}"
    prefix = (params.get("ExpressionAttributeValues") or {}).get(":p", {}).get("S")
    return f"{name} {prefix.rstrip('#')}" if prefix else name


def measure(template: Path = ROOT / "template.yaml", managers: int = 3, workers: int = 2) -> dict[str, Any]:
    from autojoin.scenario.warmup import prepare

    prepare()  # before moto is imported
    from autojoin.localcloud import LocalCloud

    guard = json.loads((ROOT / "events" / "scheduled_guard.json").read_text())
    tick = json.loads((ROOT / "events" / "scheduled_reconcile.json").read_text())
    with LocalCloud(template, seed=0) as cloud:
        stack = cloud.provision("demo", managers=managers, workers=workers)
        for group in (stack.manager_group, stack.worker_group):
            if cloud.engine.groups[group].policy_function is None:
                cloud.set_termination_policy(group, "TerminationPolicyFunction")
        cloud.run_until_idle(1800)
        rec = Recorder(cloud)
        secret = sorted(stack.rotations)[0]
        kept: list[dict[str, Any]] = []
        # cold; warm-up (discarded: it fills each environment's per-role caches); warm
        for cold, keep in ((True, True), (False, False), (False, True)):
            rec.cold, rec.rows = cold, []
            for group, n in ((stack.worker_group, workers), (stack.manager_group, managers)):
                cloud.set_desired(group, n + 1)
                cloud.run_until_idle(1800)
                cloud.set_desired(group, n)
                cloud.run_until_idle(1800)
                cloud.advance(600)  # the guard's schedule is off: a waiting removal is resumed below
            cloud.invoke("OnTerminateFunction", guard)
            cloud.invoke("ReconcileFunction", tick)
            cloud.run_until_idle(1800)
            kept += rec.rows if keep else []
        # a rotation last (it changes the token every warm environment cached), cold then warm
        for cold in (True, False):
            rec.cold, rec.rows = cold, []
            cloud.rotate_secret(secret)
            cloud.run_until_idle(1800)
            kept += rec.rows
    return summarise(kept)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per event type and temperature: calls per invocation (median invocation), by operation."""
    events: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = events.setdefault(row["event"], {"function": row["function"], "cold": [], "warm": []})
        entry["cold" if row["cold"] else "warm"].append(row["calls"])
    out: dict[str, Any] = {}
    for name, entry in sorted(events.items()):
        doc: dict[str, Any] = {"function": entry["function"], "needed": MINIMUM.get(name, {})}
        for temp in ("cold", "warm"):
            need = {op for op in MINIMUM.get(name, {}) if temp == "cold" or (name, op) not in COLD_ONLY}
            runs = entry[temp]
            if not runs:
                doc[temp] = None
                continue
            runs = sorted(runs, key=len)
            typical = runs[len(runs) // 2]  # the median invocation by call count
            ops = Counter(typical)
            extra: dict[str, dict[str, Any]] = {}
            for op, k in sorted(ops.items()):
                over = k - (1 if op in need else 0)
                if over > 0:
                    why = EXTRA.get(name, {}).get(op, NOT_EXPLAINED)
                    extra[op] = {"extra_calls": over, "why": why}
            doc[temp] = {
                "invocations": len(runs),
                "minimum": len(need),
                "calls": len(typical),
                "min_calls": len(runs[0]),
                "max_calls": len(runs[-1]),
                "by_operation": dict(sorted(ops.items())),
                "above_minimum": extra,
                "missing_from_minimum": sorted(need - set(ops)),
            }
        out[name] = doc
    return {"events": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    ap.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    args = ap.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):  # the handlers' JSON logs and EMF metrics
        doc = measure(args.template)
    print(f"{'event':<30}{'cold (min)':>12}{'warm (min)':>12}")
    for name, e in doc["events"].items():
        cells = [f"{e[t]['calls']} ({e[t]['minimum']})" if e[t] else "-" for t in ("cold", "warm")]
        print(f"{name:<30}{cells[0]:>12}{cells[1]:>12}")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
