"""Plain Auto Scaling: the same stack on the same local cloud with autojoin's removal side switched off.

What the resilience benchmark (scripts/bench_resilience.py) compares autojoin with. ``plain_auto_scaling``
reconfigures a provisioned stack, before any instance exists, the way a user would run the groups without
autojoin's quorum guard:

- no custom termination policy: the groups use AWS's ``Default`` one (AZ balance first, then the oldest
  launch template, then closest to the next billing hour);
- no terminate lifecycle hook and no retention of an abandoned terminate: an instance the group takes
  away just goes (its swarm node stays in the member list as Down; a manager stays a Raft voter);
- no scale-in protection on new managers (nothing would ever lift it);
- the rules that reach the terminate function (its lifecycle rule and its one-minute guard pass) and the
  reconciler (its schedule, its launch/terminate result rule) are disabled: no dead-node cleanup, no AZ
  reconciler, no quorum guard.

The launch side is left as it is: the launch hook and OnLaunchFunction join every new instance, so both
arms join the same way (standing in for a plain user-data join with a static token). Token rotation is
left too. Nothing here forks the simulation: the world, the groups, the engine and the swarm are the same
objects; only the stack's configuration differs.

A tool of the benchmark and the scenarios: never shipped to Lambda (not in the layer's LAYER_MODULES).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: the template functions that make up autojoin's removal side (guard, dead-node cleanup, reconciler)
REMOVAL_FUNCTIONS = frozenset({"OnTerminateFunction", "ReconcileFunction"})


def plain_auto_scaling(cloud: Any, groups: Iterable[str]) -> list[str]:
    """Switch ``cloud``'s provisioned stack to plain Auto Scaling for ``groups``; what was switched off."""
    from autojoin.localcloud import TERMINATING

    off: list[str] = []
    asg = cloud._admin.client("autoscaling")  # an unrecorded client: this is the operator, not a handler
    for group in groups:
        cloud.set_termination_policy(group, None)
        cloud.set_lifecycle_policy(group, retain_on_terminate_abandon=False)
        cloud.engine.group(group).new_instances_protected_from_scale_in = False
        off.append(f"{group}: TerminationPolicies Default, no retention, no scale-in protection")
        for hook in cloud.engine.hooks_for(group, TERMINATING):
            asg.delete_lifecycle_hook(AutoScalingGroupName=group, LifecycleHookName=hook.name)
            off.append(f"{group}: lifecycle hook {hook.name} deleted")
    for rule in cloud.stack.rules:
        if rule.enabled and any(t.function in REMOVAL_FUNCTIONS for t in rule.targets):
            rule.enabled = False
            off.append(f"rule {rule.logical_id} disabled")
    return off
