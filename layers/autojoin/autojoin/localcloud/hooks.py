"""Lifecycle hooks and actions: hooks per transition (moto's store is the truth for existence), one action
per hook with a token, heartbeat and global timeouts, CompleteLifecycleAction and
RecordLifecycleActionHeartbeat, and what a finished action does to the instance."""

from __future__ import annotations

from autojoin.localcloud.core import EngineCore
from autojoin.localcloud.records import LifecycleRecord
from autojoin.localcloud.state import (
    LAUNCHING,
    RETAINED,
    TERMINATING,
    Action,
    HookSpec,
    NoActiveLifecycleAction,
    Tracked,
)


class Hooks(EngineCore):
    """Lifecycle hooks, actions and their timers."""

    def put_hook(self, hook: HookSpec) -> None:
        self.hooks[(hook.group, hook.name)] = hook
        self.asb.create_lifecycle_hook(
            name=hook.name,
            as_name=hook.group,
            transition=hook.transition,
            timeout=hook.heartbeat_timeout,
            result=hook.default_result,
        )

    def hooks_for(self, group: str, transition: str) -> list[HookSpec]:
        # moto's own store is the truth for existence (PutLifecycleHook/DeleteLifecycleHook via the API)
        out: list[HookSpec] = []
        for h in self.asb.describe_lifecycle_hooks(as_name=group):
            if h.lifecycle_transition != transition:
                continue
            known = self.hooks.get((group, h.name))
            if (
                known is None
                or known.heartbeat_timeout != h.heartbeat_timeout
                or (known.default_result != h.default_result)
            ):
                known = HookSpec(
                    group,
                    h.name,
                    transition,
                    h.heartbeat_timeout,
                    h.default_result,
                    known.metadata if known else None,
                )
                self.hooks[(group, h.name)] = known
            out.append(known)
        return sorted(out, key=lambda h: h.name)

    def open_action(
        self,
        instance_id: str,
        lifecycle_state: str,
        *,
        token: str | None = None,
        hook_name: str | None = None,
    ) -> str | None:
        """Put a member in Pending:Wait or Terminating:Wait with an open action (the given token or a new
        one) and its timers armed, without emitting its event. None when the group has no such hook."""
        found = self.member(instance_id)
        if found is None:
            raise ValueError(f"{instance_id} is not a member of a managed group")
        st, t = found
        transition = LAUNCHING if lifecycle_state == "Pending:Wait" else TERMINATING
        hooks = self.hooks_for(t.group, transition)
        if not hooks:
            return None
        hook = next((h for h in hooks if h.name == hook_name), hooks[0])
        self._set_state(st, lifecycle_state)
        action = Action(token or self._uuid(), instance_id, hook, self._now())
        t.actions[hook.name] = action
        self._arm(action)
        return action.token

    def _start_action(self, t: Tracked, hook: HookSpec) -> None:
        action = Action(self._uuid(), t.instance_id, hook, self._now())
        t.actions[hook.name] = action
        self._arm(action)
        self.emit(self._lifecycle_event(t, action))

    def _arm(self, action: Action) -> None:
        self._arm_heartbeat(action)
        action.global_timer = self.clock.call_later(
            action.hook.global_timeout, lambda: self._timeout(action, "global-timeout")
        )

    def _arm_heartbeat(self, action: Action) -> None:
        if action.heartbeat_timer is not None:
            action.heartbeat_timer.cancel()
        action.heartbeat_timer = self.clock.call_later(
            action.hook.heartbeat_timeout, lambda: self._timeout(action, "heartbeat-timeout")
        )

    def _timeout(self, action: Action, by: str) -> None:
        t = self.tracked.get(action.instance_id)
        if t is None or t.actions.get(action.hook.name) is not action:
            return
        self._finish_action(t, action, action.hook.default_result, by)

    def find_action(self, group: str, hook: str, *, token: str | None, instance_id: str | None) -> Action:
        for t in self.tracked.values():
            if t.group != group:
                continue
            a = t.actions.get(hook)
            if a is None:
                continue
            if (token and a.token == token) or (not token and instance_id and a.instance_id == instance_id):
                return a
        what = f"instance ID {instance_id}" if instance_id and not token else f"token {token}"
        raise NoActiveLifecycleAction(f"No active Lifecycle Action found with {what}")

    def complete(
        self,
        group: str,
        hook: str,
        result: str,
        *,
        token: str | None = None,
        instance_id: str | None = None,
    ) -> None:
        """CompleteLifecycleAction."""
        if result not in {"CONTINUE", "ABANDON"}:
            raise ValueError(f"LifecycleActionResult must be CONTINUE or ABANDON, got {result}")
        action = self.find_action(group, hook, token=token, instance_id=instance_id)
        self._finish_action(self.tracked[action.instance_id], action, result, "api")

    def heartbeat(
        self, group: str, hook: str, *, token: str | None = None, instance_id: str | None = None
    ) -> None:
        """RecordLifecycleActionHeartbeat: restart the heartbeat timer (the global one keeps running)."""
        action = self.find_action(group, hook, token=token, instance_id=instance_id)
        self._arm_heartbeat(action)

    def _finish_action(self, t: Tracked, action: Action, result: str, by: str) -> None:
        for timer in (action.heartbeat_timer, action.global_timer):
            if timer is not None:
                timer.cancel()
        del t.actions[action.hook.name]
        self.lifecycle_results.append(
            LifecycleRecord(
                instance_id=t.instance_id,
                group=t.group,
                hook=action.hook.name,
                transition=action.hook.transition,
                result=result,
                by=by,
                at=self._now(),
                token=action.token,
                caller=self.caller() if by == "api" else None,
            )
        )
        st = self._state(t.instance_id)
        if st is None:
            return
        if action.hook.transition == LAUNCHING:
            if result == "ABANDON":
                self._drop_actions(t)
                self._abandon_launch(t, st)
            elif not t.actions:
                self._set_state(st, "Pending:Proceed")
                self._enter_service(t, st)
        elif result == "ABANDON" and self.groups[t.group].retain_on_terminate_abandon:
            self._drop_actions(t)
            self._set_state(st, RETAINED)
            if t.activity is not None:
                self.finish_activity(t.activity, "Cancelled")
            self._notify("retained", t.instance_id)
            self._schedule_reconcile(t.group)
        elif result == "ABANDON" or not t.actions:
            # "Amazon EC2 Auto Scaling lifecycle hooks" (Considerations): on a terminating instance
            # ABANDON "stops any remaining actions, such as other lifecycle hooks"; CONTINUE lets them finish
            self._drop_actions(t)
            self._set_state(st, "Terminating:Proceed")
            self._terminate_now(t, st)

    def _drop_actions(self, t: Tracked) -> None:
        for a in t.actions.values():
            for timer in (a.heartbeat_timer, a.global_timer):
                if timer is not None:
                    timer.cancel()
        t.actions.clear()
