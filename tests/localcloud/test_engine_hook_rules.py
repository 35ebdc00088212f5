"""Lifecycle hook rules and the activity history, each test reproducing a rule of the Amazon EC2 Auto
Scaling documentation (page and section named in the test)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from tests.localcloud.fixtures.engine_kit import Recorder, complete, engine_cloud, state_of, wire_lifecycle


def test_abandon_on_one_of_several_terminate_hooks_ends_the_others_at_once() -> None:
    # User Guide, "Amazon EC2 Auto Scaling lifecycle hooks", Considerations and limitations: on a
    # terminating instance "abandon stops any remaining actions, such as other lifecycle hooks, and
    # continue allows any other lifecycle hooks to complete".
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        group = stack.worker_group
        asg = cloud.session.client("autoscaling")
        asg.put_lifecycle_hook(
            AutoScalingGroupName=group,
            LifecycleHookName="drain",
            LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
            HeartbeatTimeout=600,
            DefaultResult="CONTINUE",
        )
        cloud.set_desired(group, 1)
        cloud.run_until_idle(60)
        (iid,) = [i.instance_id for i in cloud.instances(group)]
        terminations = Recorder()
        cloud.register_handler("OnTerminateFunction", terminations)  # answers nothing by itself
        cloud.terminate_instance(iid, decrement=True)
        cloud.run_until_idle(0)
        by_hook = {d["LifecycleHookName"]: d for d in terminations.details()}
        assert set(by_hook) == {"autojoin-terminate", "drain"}
        assert state_of(cloud, iid) == "Terminating:Wait"
        complete(cloud, by_hook["drain"], "ABANDON")
        assert state_of(cloud, iid) == "Terminated"
        with pytest.raises(ClientError, match="No active Lifecycle Action"):
            complete(cloud, by_hook["autojoin-terminate"], "CONTINUE")


def test_heartbeat_timeouts_outside_30_to_7200_seconds_are_refused() -> None:
    # API Reference, PutLifecycleHook, HeartbeatTimeout: "The range is from 30 to 7200 seconds."
    with engine_cloud() as (cloud, stack):
        asg = cloud.session.client("autoscaling")
        for bad in (29, 7201):
            with pytest.raises(ClientError) as caught:
                asg.put_lifecycle_hook(
                    AutoScalingGroupName=stack.worker_group,
                    LifecycleHookName="too-short-or-long",
                    LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
                    HeartbeatTimeout=bad,
                )
            assert caught.value.response["Error"]["Code"] == "ValidationError"
        hooks = asg.describe_lifecycle_hooks(AutoScalingGroupName=stack.worker_group)["LifecycleHooks"]
        assert "too-short-or-long" not in {h["LifecycleHookName"] for h in hooks}


def test_describe_shows_the_global_timeout_as_aws_derives_it() -> None:
    # User Guide, "Amazon EC2 Auto Scaling lifecycle hooks" (wait state): the maximum time in a wait state
    # is 48 hours or 100 times the heartbeat timeout, whichever is smaller (DescribeLifecycleHooks,
    # GlobalTimeout).
    with engine_cloud() as (cloud, stack):
        asg = cloud.session.client("autoscaling")
        for name, heartbeat in (("short", 120), ("long", 3600)):
            asg.put_lifecycle_hook(
                AutoScalingGroupName=stack.worker_group,
                LifecycleHookName=name,
                LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
                HeartbeatTimeout=heartbeat,
            )
        hooks = asg.describe_lifecycle_hooks(AutoScalingGroupName=stack.worker_group)["LifecycleHooks"]
        timeout = {h["LifecycleHookName"]: h["GlobalTimeout"] for h in hooks}
        assert timeout["short"] == 12000 and timeout["long"] == 172800


def test_describe_scaling_activities_lists_each_launch_and_termination() -> None:
    # API Reference, DescribeScalingActivities / Activity: one activity per launch and per termination,
    # newest first, Successful when done; the EventBridge event carries the same ActivityId
    # ("Amazon EC2 Auto Scaling event reference", successful scaling events).
    with engine_cloud() as (cloud, stack):
        handlers = wire_lifecycle(cloud)
        group = stack.worker_group
        cloud.set_desired(group, 1)
        cloud.run_until_idle(60)
        (iid,) = [i.instance_id for i in cloud.instances(group)]
        cloud.terminate_instance(iid, decrement=True)
        cloud.run_until_idle(60)
        asg = cloud.session.client("autoscaling")
        activities = asg.describe_scaling_activities(AutoScalingGroupName=group)["Activities"]
        assert [a["Description"] for a in activities] == [
            f"Terminating EC2 instance: {iid}",
            f"Launching a new EC2 instance: {iid}",
        ]
        assert {a["StatusCode"] for a in activities} == {"Successful"}
        assert "taken out of service in response to a user request" in activities[0]["Cause"]
        events = {d["Description"]: d["ActivityId"] for d in handlers["ResultsFunction"].details()}
        assert {a["Description"]: a["ActivityId"] for a in activities} == events
