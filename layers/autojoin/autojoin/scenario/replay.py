"""``autojoin replay``: one input, run the way AWS would run it, on a LocalCloud seeded from a STATE.

See docs/scenarios.md ("Replay: what runs for which input") for the routing table and the preconditions
replay sets up (a launch action's instance in Pending:Wait with the event's token, and so on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autojoin.scenario.inputs import LAUNCH_ACTION, ROTATION_STEPS, SCHEDULED, TERMINATE_ACTION, Input, Shape
from autojoin.scenario.invariants import Violation, token_violations
from autojoin.scenario.observe import ClusterState
from autojoin.scenario.spec import ClusterSpec
from autojoin.scenario.world import World


@dataclass
class ReplayResult:
    input: Input
    decision: Any
    cluster: ClusterState
    cluster_json: dict[str, Any]
    calls: list[dict[str, Any]] = field(default_factory=list)
    invocations: list[dict[str, Any]] = field(default_factory=list)
    lifecycle: list[dict[str, Any]] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def ignored(self) -> bool:
        return isinstance(self.decision, str) and self.decision.startswith("ignored")

    def to_json(self) -> dict[str, Any]:
        return {
            "input": {"shape": self.input.shape.value, "describe": self.input.describe()},
            "decision": self.decision,
            "setup": self.setup,
            "invocations": self.invocations,
            "calls": self.calls,
            "lifecycle": self.lifecycle,
            "cluster": self.cluster_json,
            "violations": [v.to_json() for v in self.violations],
        }


def _ignored(reason: str) -> str:
    return f"ignored: {reason}"


class _Replay:
    def __init__(self, world: World, given: Input) -> None:
        self.world = world
        self.cloud = world.cloud
        self.given = given
        self.setup: list[str] = []

    # --- preconditions -----------------------------------------------------------------------------

    def prepare(self, event: dict[str, Any]) -> dict[str, Any]:
        """Set up what the input implies; returns the event rewritten with the local cloud's ids."""
        event = self.world.rewrite_event(event)
        given = self.given
        if given.shape is Shape.EVENTBRIDGE and given.lifecycle_transition:
            event = self._lifecycle_precondition(event)
        elif given.shape is Shape.ROTATION and event["Step"] != ROTATION_STEPS[0]:
            fn = self._rotation_function(event["SecretId"])
            if fn is not None:
                for step in ROTATION_STEPS[: ROTATION_STEPS.index(event["Step"])]:
                    self.cloud.invoke(fn, {**event, "Step": step})
                    self.setup.append(f"ran {step} for version {event['ClientRequestToken']} first")
        return event

    def _lifecycle_precondition(self, event: dict[str, Any]) -> dict[str, Any]:
        """What Auto Scaling did before sending this lifecycle action, done without touching the event's
        instance id: the handler validates the id exactly as the event gives it."""
        detail = event.get("detail")
        if not isinstance(detail, dict):
            return event
        group, iid = detail.get("AutoScalingGroupName"), detail.get("EC2InstanceId")
        token, hook = detail.get("LifecycleActionToken"), detail.get("LifecycleHookName")
        if not isinstance(group, str) or group not in self.world.groups.values() or not isinstance(iid, str):
            return event
        shown = self.world.aliases.declared(iid)
        launch = self.given.detail_type == LAUNCH_ACTION
        where = self._group_of(iid)
        if where is not None and where != group:
            self.setup.append(
                f"{shown} is an instance of {self.world.aliases.declared(where)}, not of "
                f"{self.world.aliases.declared(group)}: Auto Scaling sends no such event; delivered as it is"
            )
            return event
        states = {i.instance_id: i.lifecycle_state for i in self.cloud.instances(group, include_gone=True)}
        if iid not in states:
            if not launch:
                self.setup.append(f"{shown} is not in the state: nothing to terminate")
                return event
            if not self.world.is_id(iid):
                self.setup.append(
                    f"{iid!r} is not an EC2 instance id: Auto Scaling launched nothing; delivered as it is"
                )
                return event
            az = self.cloud.engine.pick_zone(group)  # where Auto Scaling would have put it
            self.world.place(group, az, "InService", instance_id=iid)  # under the event's own id
            g = self.cloud.engine.group(group)
            g.desired_capacity = (g.desired_capacity or 0) + 1
            g.max_size = max(g.max_size or 0, g.desired_capacity)
            states[iid] = "launched"
            self.setup.append(f"launched {shown} into {self.world.aliases.declared(group)} in {az}")
        state = "Pending:Wait" if launch else "Terminating:Wait"
        if states[iid] not in {"InService", "launched", state}:
            self.setup.append(f"{shown} is {states[iid]}: no action opened")
            return event
        if launch and states[iid] == "InService" and shown in self._seeded_ids():
            self.setup.append(f"{shown} is already InService: the event arrives late (no open action)")
            return event
        from autojoin.localcloud import LAUNCHING, TERMINATING, HookSpec

        transition = LAUNCHING if launch else TERMINATING
        hooks = [h.name for h in self.cloud.engine.hooks_for(group, transition)]
        if isinstance(hook, str) and hook and hook not in hooks:
            # a hook the template does not define is another team's hook on the same group: it is added
            # to the group, and the event is delivered as it is (autojoin must leave it alone)
            self.cloud.engine.put_hook(HookSpec(group, hook, transition, 900, "CONTINUE"))
            self.setup.append(
                f"hook {hook} is not in template.yaml: added to the group as another team's hook"
            )
        # a new action with the event's token (one the state left open is replaced: the event is its notice)
        if self.world.open_action(iid, state, token=token, hook_name=hook) is None:
            kind = "launch" if launch else "terminate"
            self.setup.append(f"{self.world.aliases.declared(group)} has no {kind} hook: no action opened")
            return event
        self.setup.append(f"{shown} in {state} with the event's lifecycle action token")
        return event

    def _group_of(self, instance_id: str) -> str | None:
        """The cluster group that has (or had) ``instance_id``."""
        for real in self.world.groups.values():
            if any(i.instance_id == instance_id for i in self.cloud.instances(real, include_gone=True)):
                return real
        return None

    def _seeded_ids(self) -> set[str]:
        return {i.id for r in self.world.groups for i in self.world.spec.instances(r)}

    def _rotation_function(self, secret: str) -> str | None:
        stack = self.world.stack
        target = stack.rotations.get(secret)
        return stack.function_for_arn(target) if target else None

    # --- running -----------------------------------------------------------------------------------

    def run(self, event: dict[str, Any]) -> Any:
        shape = self.given.shape
        if shape is Shape.EVENTBRIDGE:
            if self.given.detail_type == SCHEDULED:
                return self._scheduled(event)
            return self._eventbridge(event)
        if shape is Shape.TERMINATION_POLICY:
            return self._termination_policy(event)
        if shape is Shape.ROTATION:
            fn = self._rotation_function(event["SecretId"])
            if fn is None:
                return _ignored("template.yaml has no rotation schedule for this secret")
            return self._invoke(fn, event)
        return self._notification(event)

    def _invoke(self, fn: str, event: dict[str, Any]) -> Any:
        try:
            return self.cloud.invoke(fn, event)
        except Exception as exc:  # the handler's error is the decision Lambda would report
            return {"error": type(exc).__name__, "function": fn}

    def _eventbridge(self, event: dict[str, Any]) -> Any:
        from autojoin.localcloud.patterns import matches

        stack = self.world.stack
        targets: list[str] = []
        matched: list[str] = []
        for rule in stack.rules:
            if rule.enabled and rule.pattern is not None and matches(rule.pattern, event):
                matched.append(rule.logical_id)
                targets += [
                    t.function
                    for t in rule.targets
                    if t.function and stack.permitted(t.function, "events.amazonaws.com", rule.arn)
                ]
        if not matched:
            what = f"{event.get('source')} / {event.get('detail-type')}"
            group = self.given.group
            if group and group not in {self.world.aliases.declared(g) for g in self.world.groups.values()}:
                return _ignored(
                    f"group {group} is not a group of this cluster: no rule in template.yaml matches"
                )
            return _ignored(f"no rule in template.yaml matches {what}")
        if not targets:
            return _ignored(f"rule {', '.join(matched)} matches but targets no function of the template")
        start = len(self.cloud.invocations)
        self.cloud.deliver(event)
        self.cloud.clock.run_due()
        ran = [i for i in self.cloud.invocations[start:] if i.event_id == str(event.get("id", ""))]
        results = {
            i.function: (i.result if i.outcome == "ok" else {"error": i.error_type, "function": i.function})
            for i in ran
        }
        if len(results) == 1:
            return next(iter(results.values()))
        return results

    def _scheduled(self, event: dict[str, Any]) -> Any:
        """A Scheduled Event reaches the targets of the schedule rule it names in ``resources`` (EventBridge
        puts the rule's ARN there), matched by the rule's name: the event's account and region are the
        sample's, not the local cloud's. Any other Scheduled Event (EventBridge Scheduler's, another
        rule's) reaches no function of the template."""
        stack = self.world.stack
        schedules = [r for r in stack.rules if r.schedule]
        resources = event.get("resources")
        named = (
            {str(r).rpartition("/")[2] for r in resources if isinstance(r, str)}
            if isinstance(resources, list)
            else set()
        )
        rule = next(
            (
                r
                for r in schedules
                if str(event.get("source")) == "aws.events" and named & {r.name, r.logical_id}
            ),
            None,
        )
        if rule is None:
            what = f"{event.get('source')} / {event.get('detail-type')}"
            if not schedules:
                return _ignored(
                    f"no rule in template.yaml matches {what} (the template has no schedule rule)"
                )
            return _ignored(
                f"no rule in template.yaml matches {what}: it names no schedule rule of the template"
            )
        fns = [t.function for t in rule.targets if t.function]
        if not fns:
            return _ignored(f"schedule rule {rule.logical_id} targets no function of the template")
        event = {**event, "resources": [rule.arn]}
        results = {fn: self._invoke(fn, event) for fn in fns}
        return next(iter(results.values())) if len(results) == 1 else results

    def _termination_policy(self, event: dict[str, Any]) -> Any:
        group = event["AutoScalingGroupName"]
        if group not in self.world.groups.values():
            return _ignored(
                f"group {group} is not a group of this cluster: Auto Scaling would not call autojoin"
            )
        fn = self.cloud.engine.groups[group].policy_function
        if fn is None:
            return _ignored(
                f"group {self.world.aliases.declared(group)} has no custom termination policy in the "
                "template (no TerminationPolicyFunction yet): Auto Scaling picks the instances itself"
            )
        return self._invoke(fn, event)

    def _notification(self, event: dict[str, Any]) -> Any:
        transition = str(event.get("LifecycleTransition", ""))
        fn = "OnTerminateFunction" if transition.endswith("TERMINATING") else "OnLaunchFunction"
        if fn not in self.world.stack.functions:
            return _ignored(f"template.yaml has no {fn}")
        return self._invoke(fn, event)


def replay(given: Input, spec: ClusterSpec, *, seed: int = 0, template: Path | None = None) -> ReplayResult:
    with World(spec, seed=seed, template=template) as world:
        runner = _Replay(world, given)
        with world.capture():
            event = runner.prepare(dict(given.event))
            world.mark()
            decision = runner.run(event)
        state = world.observe()
        aliases = world.aliases
        calls = [
            {
                "service": c.service,
                "operation": c.operation,
                "params": c.params,
                "function": c.function,
                "at": (c.at - world.start).total_seconds(),
            }
            for c in world.new_calls()
        ]
        invocations = [
            {
                "function": i.function,
                "kind": i.kind,
                "attempt": i.attempt,
                "outcome": i.outcome,
                "error_type": i.error_type,
            }
            for i in world.new_invocations()
        ]
        lifecycle = [
            {
                "instance_id": r.instance_id,
                "group": r.group,
                "hook": r.hook,
                "transition": r.transition,
                "result": r.result,
                "by": r.by,
                "caller": getattr(r, "caller", None),
                "token": r.token,
            }
            for r in world.new_lifecycle()
        ]
        violations = token_violations(
            world.new_calls(), world.new_invocations(), world.log_lines(), [decision]
        )
        return ReplayResult(
            input=given,
            decision=aliases.outward(decision),
            cluster=state,
            cluster_json=aliases.outward(state.to_json()),
            calls=aliases.outward(calls),
            invocations=invocations,
            lifecycle=aliases.outward(lifecycle),
            setup=runner.setup,
            violations=violations,
        )


__all__ = ["TERMINATE_ACTION", "ReplayResult", "replay"]
