"""Lifecycle hooks and actions behave as the EC2 Auto Scaling user guide documents them, through boto3."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from moto.autoscaling.exceptions import ValidationError
from tests.localcloud.fixtures.engine_kit import (
    Recorder,
    auto_completer,
    complete,
    ec2_state,
    engine_cloud,
    heartbeat,
    state_of,
    states,
    wire_lifecycle,
)

from autojoin.localcloud import LocalCloud, LocalCloudError, Stack
from autojoin.localcloud.asg import HookSpec


def test_launch_waits_in_pending_wait_until_continue_then_in_service() -> None:
    with engine_cloud() as (cloud, stack):
        launches, results = Recorder(), Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.register_handler("ResultsFunction", results)
        cloud.set_desired(stack.manager_group, 1)
        cloud.run_until_idle(60)

        assert len(launches.events) == 1
        event = launches.events[0]
        group_arn = cloud.engine.group(stack.manager_group).arn
        assert event["source"] == "aws.autoscaling"
        assert event["detail-type"] == "EC2 Instance-launch Lifecycle Action"
        assert event["resources"] == [group_arn]
        detail = event["detail"]
        assert set(detail) == {
            "LifecycleActionToken",
            "AutoScalingGroupName",
            "LifecycleHookName",
            "EC2InstanceId",
            "LifecycleTransition",
            "NotificationMetadata",
            "Origin",  # on every lifecycle action event (Auto Scaling event reference)
            "Destination",
        }
        assert detail["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
        assert detail["LifecycleHookName"] == "autojoin-launch"
        assert detail["NotificationMetadata"] == '{"role": "manager"}'
        iid = detail["EC2InstanceId"]
        assert state_of(cloud, iid) == "Pending:Wait"
        assert ec2_state(cloud, iid) == "running"

        cloud.advance(600)  # still inside the 900 s heartbeat timeout
        assert state_of(cloud, iid) == "Pending:Wait"
        assert results.events == []  # nothing succeeded yet

        complete(cloud, detail, "CONTINUE")
        assert state_of(cloud, iid) == "InService"
        cloud.run_until_idle(60)
        assert results.types() == ["EC2 Instance Launch Successful"]
        assert results.details()[0]["EC2InstanceId"] == iid
        assert results.events[0]["resources"] == [
            group_arn,
            f"arn:aws:ec2:us-east-1:123456789012:instance/{iid}",
        ]
        record = cloud.lifecycle_results[-1]
        assert (record.instance_id, record.hook, record.result, record.by) == (
            iid,
            "autojoin-launch",
            "CONTINUE",
            "api",
        )
        assert record.caller is None  # the test itself, outside any function


def test_complete_by_instance_id() -> None:
    with engine_cloud() as (cloud, stack):
        launches = Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.set_desired(stack.manager_group, 1)
        cloud.run_until_idle(60)
        detail = launches.details()[0]
        complete(cloud, detail, "CONTINUE", by="instance")
        assert state_of(cloud, detail["EC2InstanceId"]) == "InService"


@pytest.mark.parametrize("by", ["token", "instance"])
def test_completing_twice_fails_with_no_active_lifecycle_action(by: str) -> None:
    with engine_cloud() as (cloud, stack):
        launches = Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.set_desired(stack.manager_group, 1)
        cloud.run_until_idle(60)
        detail = launches.details()[0]
        complete(cloud, detail, "CONTINUE", by=by)
        with pytest.raises(ClientError) as err:
            complete(cloud, detail, "CONTINUE", by=by)
        assert err.value.response["Error"]["Code"] == "ValidationError"
        what = (
            f"instance ID {detail['EC2InstanceId']}"
            if by == "instance"
            else f"token {detail['LifecycleActionToken']}"
        )
        assert err.value.response["Error"]["Message"] == f"No active Lifecycle Action found with {what}"
        with pytest.raises(ClientError, match="No active Lifecycle Action found"):
            heartbeat(cloud, detail)


def test_bad_completion_requests_are_validation_errors() -> None:
    with engine_cloud() as (cloud, stack):
        launches = Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.set_desired(stack.manager_group, 1)
        cloud.run_until_idle(60)
        detail = launches.details()[0]
        asg = cloud.session.client("autoscaling")
        with pytest.raises(ClientError, match="Group nope not found"):
            asg.complete_lifecycle_action(
                AutoScalingGroupName="nope",
                LifecycleHookName="autojoin-launch",
                LifecycleActionResult="CONTINUE",
                InstanceId=detail["EC2InstanceId"],
            )
        with pytest.raises(ClientError, match="LifecycleActionToken or InstanceId"):
            asg.complete_lifecycle_action(
                AutoScalingGroupName=stack.manager_group,
                LifecycleHookName="autojoin-launch",
                LifecycleActionResult="CONTINUE",
            )
        with pytest.raises(ClientError, match="CONTINUE or ABANDON"):
            complete(cloud, detail, "MAYBE")
        with pytest.raises(ValueError, match="CONTINUE or ABANDON"):
            cloud.engine.complete(
                stack.manager_group, "autojoin-launch", "MAYBE", token=detail["LifecycleActionToken"]
            )
        assert state_of(cloud, detail["EC2InstanceId"]) == "Pending:Wait"


def test_abandon_on_launch_terminates_and_replaces() -> None:
    with engine_cloud() as (cloud, stack):
        launches, results = Recorder(), Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.register_handler("ResultsFunction", results)
        cloud.set_desired(stack.manager_group, 1)
        cloud.run_until_idle(60)
        first = launches.details()[0]
        complete(cloud, first, "ABANDON")
        assert ec2_state(cloud, first["EC2InstanceId"]) == "terminated"
        assert state_of(cloud, first["EC2InstanceId"]) == "Terminated"
        cloud.run_until_idle(120)
        # the group replaced it: a second instance waits for its own launch action
        assert len(launches.events) == 2
        second = launches.details()[1]["EC2InstanceId"]
        assert second != first["EC2InstanceId"]
        assert states(cloud, stack.manager_group) == {second: "Pending:Wait"}  # the terminated one is gone
        assert results.types() == ["EC2 Instance Launch Unsuccessful"]
        assert results.details()[0]["StatusCode"] == "Cancelled"
        assert "ABANDON" in results.details()[0]["StatusMessage"]


def test_heartbeat_extends_the_timeout() -> None:
    with engine_cloud() as (cloud, stack):
        launches = Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.set_desired(stack.manager_group, 1)
        cloud.run_until_idle(0)
        detail = launches.details()[0]
        iid = detail["EC2InstanceId"]
        cloud.advance(800)
        heartbeat(cloud, detail)  # the 900 s timer restarts: now due at t=1700
        cloud.advance(899)
        assert state_of(cloud, iid) == "Pending:Wait"
        assert cloud.lifecycle_results == []
        cloud.advance(1)
        assert cloud.lifecycle_results[-1].by == "heartbeat-timeout"
        assert cloud.lifecycle_results[-1].at == cloud.start + timedelta(seconds=1700)


def test_heartbeat_timeout_applies_the_default_result() -> None:
    with engine_cloud() as (cloud, stack):
        launches = Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.set_desired(stack.manager_group, 1)  # DefaultResult ABANDON
        cloud.set_desired(stack.worker_group, 1)  # DefaultResult CONTINUE
        cloud.run_until_idle(0)
        by_group = {d["AutoScalingGroupName"]: d["EC2InstanceId"] for d in launches.details()}
        cloud.advance(900)
        manager, worker = by_group[stack.manager_group], by_group[stack.worker_group]
        assert ec2_state(cloud, manager) == "terminated"
        assert state_of(cloud, worker) == "InService"
        results = {(r.instance_id, r.result, r.by) for r in cloud.lifecycle_results}
        assert results == {
            (manager, "ABANDON", "heartbeat-timeout"),
            (worker, "CONTINUE", "heartbeat-timeout"),
        }


def test_global_timeout_is_100_heartbeats_at_most() -> None:
    with engine_cloud(heartbeat_timeout=30) as (cloud, stack):
        launches = Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.set_desired(stack.manager_group, 1)
        cloud.run_until_idle(0)
        detail = launches.details()[0]
        for _ in range(200):  # keep heartbeating every 20 s: the heartbeat timer never runs out
            cloud.advance(20)
            if cloud.lifecycle_results:
                break
            heartbeat(cloud, detail)
        record = cloud.lifecycle_results[0]
        assert (record.result, record.by) == ("ABANDON", "global-timeout")
        assert record.at == cloud.start + timedelta(seconds=3000)  # 100 x 30 s
        assert ec2_state(cloud, detail["EC2InstanceId"]) == "terminated"


def test_global_timeout_is_capped_at_48_hours() -> None:
    assert HookSpec("g", "h", "x", heartbeat_timeout=7200).global_timeout == 48 * 3600
    assert HookSpec("g", "h", "x", heartbeat_timeout=900).global_timeout == 90_000
    with engine_cloud(heartbeat_timeout=7200) as (cloud, stack):
        launches = Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.set_desired(stack.manager_group, 1)
        cloud.run_until_idle(0)
        detail = launches.details()[0]
        while not cloud.lifecycle_results:
            cloud.advance(7000)
            if not cloud.lifecycle_results:
                heartbeat(cloud, detail)
        assert cloud.lifecycle_results[0].by == "global-timeout"
        assert cloud.lifecycle_results[0].at == cloud.start + timedelta(hours=48)


def _running_manager(cloud: LocalCloud, stack: Stack) -> tuple[str, Recorder, Recorder]:
    handlers = wire_lifecycle(cloud)
    terminations = Recorder()
    cloud.register_handler("OnTerminateFunction", terminations)
    cloud.set_desired(stack.manager_group, 1)
    cloud.run_until_idle(60)
    (iid,) = states(cloud, stack.manager_group)
    return iid, terminations, handlers["ResultsFunction"]


def test_terminate_hook_waits_in_terminating_wait_then_continue_terminates() -> None:
    with engine_cloud() as (cloud, stack):
        iid, terminations, results = _running_manager(cloud, stack)
        cloud.session.client("autoscaling").terminate_instance_in_auto_scaling_group(
            InstanceId=iid, ShouldDecrementDesiredCapacity=True
        )
        assert state_of(cloud, iid) == "Terminating:Wait"
        cloud.terminate_instance(iid, decrement=True)  # again, while it waits: nothing changes
        assert cloud.engine.group(stack.manager_group).desired_capacity == 0
        cloud.run_until_idle(0)
        assert terminations.types() == ["EC2 Instance-terminate Lifecycle Action"]
        detail = terminations.details()[0]
        assert detail["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
        assert detail["EC2InstanceId"] == iid
        assert "NotificationMetadata" not in detail
        assert ec2_state(cloud, iid) == "running"
        complete(cloud, detail, "CONTINUE")
        assert ec2_state(cloud, iid) == "terminated"
        assert state_of(cloud, iid) == "Terminated"
        cloud.run_until_idle(300)
        assert states(cloud, stack.manager_group) == {}  # decremented: no replacement
        assert cloud.engine.group(stack.manager_group).desired_capacity == 0
        assert results.types()[-1] == "EC2 Instance Terminate Successful"


def test_terminate_abandon_with_retention_policy_retains_the_instance() -> None:
    with engine_cloud() as (cloud, stack):
        iid, terminations, _ = _running_manager(cloud, stack)
        cloud.terminate_instance(iid, decrement=False)
        cloud.run_until_idle(0)
        complete(cloud, terminations.details()[0], "ABANDON")
        # the retained state as Describe shows it: Terminating:Retained (API Reference, Instance,
        # LifecycleState; User Guide, "Control instance retention with instance lifecycle policies")
        assert state_of(cloud, iid) == "Terminating:Retained"
        assert ec2_state(cloud, iid) == "running"
        assert cloud.lifecycle_results[-1].result == "ABANDON"
        # a Retained instance does not count toward desired capacity: the group launches a replacement
        cloud.run_until_idle(60)
        current = states(cloud, stack.manager_group)
        assert current[iid] == "Terminating:Retained"
        assert sorted(current.values()) == ["InService", "Terminating:Retained"]
        # it stays until TerminateInstanceInAutoScalingGroup
        cloud.advance(3 * 86400)
        assert state_of(cloud, iid) == "Terminating:Retained"
        cloud.terminate_instance(iid, decrement=True)
        assert ec2_state(cloud, iid) == "terminated"
        assert cloud.engine.group(stack.manager_group).desired_capacity == 1  # Retained was outside it


def test_terminate_hook_timeout_with_abandon_default_retains() -> None:
    with engine_cloud() as (cloud, stack):
        iid, terminations, _ = _running_manager(cloud, stack)
        cloud.terminate_instance(iid, decrement=True)
        cloud.run_until_idle(0)
        assert terminations.events
        cloud.advance(300)  # the manager terminate hook: 300 s, DefaultResult ABANDON
        assert state_of(cloud, iid) == "Terminating:Retained"
        assert cloud.lifecycle_results[-1].by == "heartbeat-timeout"


def test_terminate_abandon_without_retention_policy_terminates() -> None:
    with engine_cloud() as (cloud, stack):
        cloud.register_handler("OnLaunchFunction", auto_completer(cloud))
        terminations = Recorder()
        cloud.register_handler("OnTerminateFunction", terminations)
        cloud.set_desired(stack.worker_group, 1)
        cloud.run_until_idle(60)
        (iid,) = states(cloud, stack.worker_group)
        cloud.terminate_instance(iid, decrement=True)
        cloud.run_until_idle(0)
        complete(cloud, terminations.details()[0], "ABANDON")
        assert ec2_state(cloud, iid) == "terminated"


def test_terminating_an_unknown_instance_is_a_validation_error() -> None:
    with engine_cloud() as (cloud, _stack), pytest.raises(ValidationError, match="Instance Id not found"):
        cloud.terminate_instance("i-0123456789abcdef0")


def test_terminate_without_replacement_below_min_size_is_refused() -> None:
    with engine_cloud() as (cloud, stack):
        iid, _, _ = _running_manager(cloud, stack)
        cloud.engine.group(stack.manager_group).min_size = 1
        with pytest.raises(ClientError, match="min size"):
            cloud.session.client("autoscaling").terminate_instance_in_auto_scaling_group(
                InstanceId=iid, ShouldDecrementDesiredCapacity=True
            )


def test_hooks_added_through_the_api_keep_their_metadata() -> None:
    with engine_cloud() as (cloud, stack):
        asg = cloud.session.client("autoscaling")
        asg.put_lifecycle_hook(
            AutoScalingGroupName=stack.worker_group,
            LifecycleHookName="extra",
            LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
            HeartbeatTimeout=60,
            DefaultResult="CONTINUE",
            NotificationMetadata="hello",
        )
        launches = Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.set_desired(stack.worker_group, 1)
        cloud.run_until_idle(0)
        hooks = {d["LifecycleHookName"]: d for d in launches.details()}
        assert set(hooks) == {"autojoin-launch", "extra"}
        assert hooks["extra"]["NotificationMetadata"] == "hello"
        iid = hooks["extra"]["EC2InstanceId"]
        complete(cloud, hooks["extra"], "CONTINUE")
        assert state_of(cloud, iid) == "Pending:Wait"  # every hook must finish
        complete(cloud, hooks["autojoin-launch"], "CONTINUE")
        assert state_of(cloud, iid) == "InService"
        asg.delete_lifecycle_hook(AutoScalingGroupName=stack.worker_group, LifecycleHookName="extra")
        asg.delete_lifecycle_hook(
            AutoScalingGroupName=stack.worker_group, LifecycleHookName="autojoin-launch"
        )
        cloud.set_desired(stack.worker_group, 2)
        cloud.run_until_idle(0)
        assert sorted(states(cloud, stack.worker_group).values()) == [
            "InService",
            "InService",
        ]  # no hooks: no wait


def test_every_lifecycle_action_event_carries_origin_and_destination() -> None:
    # "Amazon EC2 Auto Scaling event reference", Lifecycle action events: the scale-out example carries
    # "Origin": "EC2", "Destination": "AutoScalingGroup", the scale-in one the reverse, warm pool or not.
    # The terminate rule (Destination absent or EC2) matches it.
    with engine_cloud() as (cloud, stack):
        launches, terminations, results = Recorder(), Recorder(), Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.register_handler("OnTerminateFunction", terminations)
        cloud.register_handler("ResultsFunction", results)
        cloud.set_desired(stack.manager_group, 1)
        cloud.run_until_idle(0)
        detail = launches.details()[0]
        assert (detail["Origin"], detail["Destination"]) == ("EC2", "AutoScalingGroup")
        complete(cloud, detail)
        cloud.terminate_instance(detail["EC2InstanceId"])
        cloud.run_until_idle(0)
        (terminate,) = terminations.details()
        assert (terminate["Origin"], terminate["Destination"]) == ("AutoScalingGroup", "EC2")
        assert "Destination" not in results.details()[0]  # activity events: only with a warm pool


def test_groups_with_a_warm_pool_add_origin_and_destination_to_activity_events() -> None:
    with engine_cloud() as (cloud, stack):
        cloud.engine.groups[stack.manager_group].warm_pool = True
        wire = wire_lifecycle(cloud)
        cloud.set_desired(stack.manager_group, 1)
        cloud.run_until_idle(0)
        assert wire["ResultsFunction"].details()[0]["Destination"] == "AutoScalingGroup"


def test_attached_instances_join_without_hooks_and_leave_through_them() -> None:
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        terminations = Recorder()
        cloud.register_handler("OnTerminateFunction", terminations)
        ec2 = cloud.session.client("ec2")
        subnet = stack.parameters["SubnetIds"][0]
        image = stack.parameters["ImageId"]
        iid = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0][
            "InstanceId"
        ]
        asg = cloud.session.client("autoscaling")
        asg.attach_instances(AutoScalingGroupName=stack.manager_group, InstanceIds=[iid])
        cloud.run_until_idle(0)
        assert state_of(cloud, iid) == "InService"  # hooks do not fire for attach
        assert cloud.engine.group(stack.manager_group).desired_capacity == 1
        asg.terminate_instance_in_auto_scaling_group(InstanceId=iid, ShouldDecrementDesiredCapacity=True)
        assert state_of(cloud, iid) == "Terminating:Wait"
        cloud.run_until_idle(0)
        complete(cloud, terminations.details()[0])
        assert ec2_state(cloud, iid) == "terminated"


def test_seeding_places_instances_and_opens_actions_without_events() -> None:
    with engine_cloud() as (cloud, stack):
        launches = Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        placed = [cloud.place_instance(stack.manager_group, z) for z in cloud.zones]
        assert {cloud.engine.tracked[i].az for i in placed} == set(cloud.zones)
        assert [state_of(cloud, i) for i in placed] == ["InService"] * 3
        waiting = cloud.place_instance(stack.manager_group, "us-east-1a", "Pending")
        token = cloud.open_action(waiting, "Pending:Wait", token="11111111-2222-4333-8444-555555555555")
        assert token == "11111111-2222-4333-8444-555555555555"
        assert state_of(cloud, waiting) == "Pending:Wait"
        cloud.run_until_idle(0)
        assert launches.events == [] and cloud.events == []  # nothing emitted
        complete(
            cloud,
            {
                "AutoScalingGroupName": stack.manager_group,
                "LifecycleHookName": "autojoin-launch",
                "LifecycleActionToken": token,
            },
        )
        assert state_of(cloud, waiting) == "InService"
        leaving = cloud.open_action(placed[0], "Terminating:Wait", hook_name="autojoin-terminate")
        assert leaving is not None and state_of(cloud, placed[0]) == "Terminating:Wait"
        cloud.advance(300)  # its hook's timeout, DefaultResult ABANDON, retention policy: Retained
        assert state_of(cloud, placed[0]) == "Terminating:Retained"
        asg = cloud.session.client("autoscaling")
        asg.delete_lifecycle_hook(
            AutoScalingGroupName=stack.manager_group, LifecycleHookName="autojoin-launch"
        )
        assert cloud.open_action(placed[1], "Pending:Wait") is None
        with pytest.raises(LocalCloudError, match="Pending:Wait or Terminating:Wait"):
            cloud.open_action(placed[1], "InService")
        with pytest.raises(LocalCloudError, match="not a member"):
            cloud.open_action("i-0123456789abcdef0", "Pending:Wait")
        with pytest.raises(ValueError, match="not one of the zones"):
            cloud.engine.place(stack.manager_group, "us-east-1f")
