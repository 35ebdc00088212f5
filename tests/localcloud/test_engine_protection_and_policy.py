"""Scale-in protection, the custom termination policy's input and answer, the default termination order
and the activity history, each test reproducing a rule of the Amazon EC2 Auto Scaling User Guide (page
and section named in the test)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from tests.localcloud.fixtures.engine_kit import (
    Recorder,
    engine_cloud,
    first_suggestion,
    in_service,
    states,
    wire_lifecycle,
)

POLICY = "TerminationPolicyFunction"
ALL_PROTECTED = (
    "Could not scale to desired capacity because all remaining instances are protected from scale-in."
)


def _managers(cloud: Any, stack: Any, count: int) -> list[str]:
    wire_lifecycle(cloud)
    cloud.set_desired(stack.manager_group, count)
    cloud.run_until_idle(60)
    ids = in_service(cloud, stack.manager_group)
    assert len(ids) == count
    return ids


def _az(cloud: Any, group: str) -> dict[str, str]:
    return {i.instance_id: i.az for i in cloud.instances(group)}


def _activities(cloud: Any, group: str) -> list[dict[str, Any]]:
    asg = cloud.session.client("autoscaling")
    return list(asg.describe_scaling_activities(AutoScalingGroupName=group)["Activities"])


def test_lifting_protection_lets_a_blocked_scale_in_go_ahead() -> None:
    # User Guide, "Use instance scale-in protection": if all instances are protected when a scale-in event
    # occurs, desired capacity is decremented but nothing can terminate until protection is disabled; the
    # activity history says "Could not scale to desired capacity because all remaining instances are
    # protected from scale-in." Lifting protection lets the next scale-in pass terminate.
    with engine_cloud() as (cloud, stack):
        ids = _managers(cloud, stack, 3)
        policy = Recorder(first_suggestion)
        cloud.register_handler(POLICY, policy)
        asg = cloud.session.client("autoscaling")
        group = stack.manager_group
        asg.set_instance_protection(AutoScalingGroupName=group, InstanceIds=ids, ProtectedFromScaleIn=True)
        asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=2)
        cloud.run_until_idle(600)
        assert in_service(cloud, group) == ids and policy.events == []
        refused = [a for a in _activities(cloud, group) if a["Description"] == ALL_PROTECTED]
        assert len(refused) == 1 and refused[0]["StatusCode"] == "Cancelled"
        assert "shrinking the capacity from 3 to 2" in refused[0]["Cause"]
        asg.set_instance_protection(
            AutoScalingGroupName=group, InstanceIds=[ids[1]], ProtectedFromScaleIn=False
        )
        cloud.run_until_idle(600)
        assert in_service(cloud, group) == [ids[0], ids[2]]
        assert [[i["InstanceId"] for i in e["Instances"]] for e in policy.events] == [[ids[1]]]


def test_an_instance_in_pending_wait_is_not_yet_protected() -> None:
    # User Guide, "Use instance scale-in protection": "Instance scale-in protection starts when the
    # instance state is InService" — a Pending:Wait instance of a protecting group can be scaled in.
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        cloud.register_handler("OnLaunchFunction", Recorder())  # never completes: they stay Pending:Wait
        group = stack.worker_group
        asg = cloud.session.client("autoscaling")
        asg.update_auto_scaling_group(AutoScalingGroupName=group, NewInstancesProtectedFromScaleIn=True)
        cloud.set_desired(group, 3)
        cloud.run_until_idle(10)
        described = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
        assert {i["LifecycleState"] for i in described["Instances"]} == {"Pending:Wait"}
        assert all(i["ProtectedFromScaleIn"] for i in described["Instances"])
        cloud.set_desired(group, 2)
        cloud.run_until_idle(10)
        now = states(cloud, group)
        assert sum(1 for s in now.values() if s == "Pending:Wait") == 2
        assert sum(1 for s in now.values() if s.startswith("Terminat")) == 1


def test_balanced_zones_put_every_zone_s_instances_in_the_policy_input() -> None:
    # User Guide, "Create a custom termination policy with Lambda", Input data: "If the Availability
    # Zones used by the group are balanced, the input data contains instances from all of the
    # Availability Zones for the group"; when one AZ has more, only that AZ's eligible instances.
    with engine_cloud() as (cloud, stack):
        ids = _managers(cloud, stack, 4)  # 2-1-1
        policy = Recorder(lambda e: {"InstanceIDs": []})
        cloud.register_handler(POLICY, policy)
        zones = _az(cloud, stack.manager_group)
        big = Counter(zones.values()).most_common(1)[0][0]
        cloud.set_desired(stack.manager_group, 3)
        cloud.run_until_idle(0)
        assert {i["AvailabilityZone"] for i in policy.events[0]["Instances"]} == {big}
        cloud.set_desired(stack.manager_group, 4)  # back: nothing to do
        cloud.terminate_instance(next(i for i in ids if zones[i] == big), decrement=True)  # 1-1-1
        cloud.run_until_idle(60)
        cloud.set_desired(stack.manager_group, 2)
        cloud.run_until_idle(0)
        event = policy.events[-1]
        assert len({i["AvailabilityZone"] for i in event["Instances"]}) == 3
        assert sum(c["Capacity"] for c in event["CapacityToTerminate"]) == 1


def test_an_answer_naming_more_than_needed_is_applied_az_balance_first() -> None:
    # User Guide, "Create a custom termination policy with Lambda", Considerations: "Returning an instance
    # first in the response data does not guarantee its termination. If more than the required number of
    # instances are returned ... the default termination policy is used to determine which instances to
    # terminate" (AZ balance first), not the order of the answer.
    with engine_cloud() as (cloud, stack):
        _managers(cloud, stack, 5)  # 2-2-1
        zones = _az(cloud, stack.manager_group)
        per_zone = Counter(zones.values())
        lone = next(i for i, z in zones.items() if per_zone[z] == 1)
        answer = [lone] + [i for i in zones if i != lone]
        cloud.register_handler(POLICY, Recorder(lambda e: {"InstanceIDs": answer}))
        cloud.set_desired(stack.manager_group, 4)
        cloud.run_until_idle(600)
        assert lone in in_service(cloud, stack.manager_group)
        assert sorted(cloud.layout(stack.manager_group).values()) == [1, 1, 2]
        call = cloud.policy_calls[0]
        assert call.answer == answer and len(call.accepted) == 1 and call.accepted != [lone]


def test_the_answer_overrides_the_input_but_protected_and_unknown_ids_are_ignored() -> None:
    # User Guide, "Create a custom termination policy with Lambda", Response data: "you can return a
    # different set of instances that are ready to be terminated, which overrides the instances in the
    # input data"; Limitations: "Amazon EC2 Auto Scaling won't terminate instances that have instance
    # scale-in protection enabled".
    with engine_cloud() as (cloud, stack):
        _managers(cloud, stack, 5)  # 2-2-1
        zones = _az(cloud, stack.manager_group)
        per_zone = Counter(zones.values())
        lone = next(i for i, z in zones.items() if per_zone[z] == 1)
        guarded = next(i for i, z in zones.items() if per_zone[z] == 2)
        cloud.set_protection(stack.manager_group, [guarded], True)
        cloud.register_handler(
            POLICY, Recorder(lambda e: {"InstanceIDs": [guarded, "i-0000000000000000", lone]})
        )
        cloud.set_desired(stack.manager_group, 4)
        cloud.run_until_idle(0)
        call = cloud.policy_calls[0]
        assert lone not in {i["InstanceId"] for i in call.input["Instances"]}  # not suggested ...
        assert call.accepted == [lone]  # ... yet terminated: the answer overrides the input
        assert guarded in in_service(cloud, stack.manager_group)


def test_default_order_within_an_az_closest_to_the_next_billing_hour_goes_first() -> None:
    # User Guide, "Configure termination policies", Default termination policy: within the AZ, after the
    # oldest launch template, "determine which instances are closest to the next billing hour".
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        group = stack.worker_group
        cloud.set_desired(group, 3)
        cloud.run_until_idle(60)
        first = set(in_service(cloud, group))
        cloud.advance(1000)
        cloud.set_desired(group, 6)
        cloud.run_until_idle(60)
        second = set(in_service(cloud, group)) - first
        cloud.clock.advance_to(cloud.start + timedelta(seconds=4000))
        # now the first three have run ~4000 s (3200 s to their next hour), the others ~3000 s (600 s)
        cloud.set_desired(group, 3)
        cloud.run_until_idle(600)
        assert set(in_service(cloud, group)) == first
        assert not second & set(in_service(cloud, group))


def test_default_order_within_an_az_oldest_launch_template_version_goes_first() -> None:
    # User Guide, "Configure termination policies", Default termination policy: first "determine whether
    # any of the instances use the oldest launch template" (the oldest version of the current launch
    # template goes first), before the billing hour.
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        group = stack.worker_group
        cloud.set_desired(group, 3)
        cloud.run_until_idle(60)
        old = set(in_service(cloud, group))
        ec2 = cloud.session.client("ec2")
        asg = cloud.session.client("autoscaling")
        spec = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
        template = spec["LaunchTemplate"]["LaunchTemplateId"]
        version = ec2.create_launch_template_version(
            LaunchTemplateId=template, SourceVersion="1", LaunchTemplateData={"InstanceType": "t3.micro"}
        )["LaunchTemplateVersion"]["VersionNumber"]
        asg.update_auto_scaling_group(
            AutoScalingGroupName=group, LaunchTemplate={"LaunchTemplateId": template, "Version": str(version)}
        )
        cloud.advance(1000)
        cloud.set_desired(group, 6)
        cloud.run_until_idle(60)
        cloud.clock.advance_to(cloud.start + timedelta(seconds=4000))
        # by the billing hour alone the new ones would go (600 s to their next hour against 3200 s)
        cloud.set_desired(group, 3)
        cloud.run_until_idle(600)
        assert not old & set(in_service(cloud, group))
        assert len(in_service(cloud, group)) == 3
