"""Instance refresh preferences and maximum instance lifetime, each test reproducing a rule of the Amazon
EC2 Auto Scaling documentation (page and section named in the test)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.localcloud.fixtures.engine_kit import (
    Recorder,
    complete,
    engine_cloud,
    first_suggestion,
    in_service,
    states,
    wire_lifecycle,
)

POLICY = "TerminationPolicyFunction"
REFRESH = "EC2 Auto Scaling Instance Refresh"


def _group_of(cloud: Any, group: str, count: int) -> list[str]:
    wire_lifecycle(cloud)
    cloud.set_desired(group, count)
    cloud.run_until_idle(60)
    ids = in_service(cloud, group)
    assert len(ids) == count
    return ids


def _refresh_events(cloud: Any) -> list[str]:
    return [
        e["detail-type"][len(REFRESH) + 1 :] for e in cloud.events if e["detail-type"].startswith(REFRESH)
    ]


def test_a_refresh_waiting_on_a_protected_instance_fails_after_an_hour() -> None:
    # API Reference, RefreshPreferences, ScaleInProtectedInstances: "Wait (default) - Amazon EC2 Auto
    # Scaling waits one hour for you to remove scale-in protection. Otherwise, the instance refresh will
    # fail." Event reference: Instance Refresh Started / Failed events.
    with engine_cloud() as (cloud, stack):
        group = stack.worker_group
        ids = _group_of(cloud, group, 3)
        cloud.set_protection(group, [ids[0]], True)
        cloud.start_instance_refresh(group)
        cloud.run_until_idle(1800)
        assert cloud.refresh_status(group) == "InProgress"
        assert ids[0] in in_service(cloud, group) and not set(ids[1:]) & set(in_service(cloud, group))
        cloud.run_until_idle(3600)
        assert cloud.refresh_status(group) == "Failed"
        assert ids[0] in in_service(cloud, group)
        assert _refresh_events(cloud) == ["Started", "Failed"]


def test_lifting_protection_lets_a_waiting_refresh_finish() -> None:
    # Same preference (Wait): once protection is removed within the hour the instance is replaced.
    with engine_cloud() as (cloud, stack):
        group = stack.worker_group
        ids = _group_of(cloud, group, 2)
        cloud.set_protection(group, [ids[0]], True)
        cloud.start_instance_refresh(group)
        cloud.run_until_idle(600)
        cloud.set_protection(group, [ids[0]], False)
        cloud.run_until_idle(600)
        assert cloud.refresh_status(group) == "Successful"
        assert not set(ids) & set(in_service(cloud, group))
        assert _refresh_events(cloud) == ["Started", "Succeeded"]


def test_refresh_replaces_protected_instances_and_ignore_skips_them() -> None:
    # RefreshPreferences, ScaleInProtectedInstances: "Refresh - Amazon EC2 Auto Scaling replaces
    # instances that are protected from scale in"; "Ignore - ... ignores instances that are protected
    # from scale in and continues to replace instances that are not protected". Through the API.
    with engine_cloud() as (cloud, stack):
        group = stack.worker_group
        ids = _group_of(cloud, group, 2)
        cloud.set_protection(group, [ids[0]], True)
        asg = cloud.session.client("autoscaling")
        asg.start_instance_refresh(
            AutoScalingGroupName=group, Preferences={"ScaleInProtectedInstances": "Ignore"}
        )
        cloud.run_until_idle(600)
        assert cloud.refresh_status(group) == "Successful"
        now = in_service(cloud, group)
        assert ids[0] in now and ids[1] not in now
        asg.start_instance_refresh(
            AutoScalingGroupName=group, Preferences={"ScaleInProtectedInstances": "Refresh"}
        )
        cloud.run_until_idle(600)
        assert cloud.refresh_status(group) == "Successful"
        assert not set(now) & set(in_service(cloud, group))
        described = asg.describe_instance_refreshes(AutoScalingGroupName=group)["InstanceRefreshes"]
        assert [r["Preferences"]["ScaleInProtectedInstances"] for r in described] == ["Refresh", "Ignore"]


def test_skip_matching_leaves_instances_already_on_the_desired_template() -> None:
    # RefreshPreferences, SkipMatching: instances that already have the desired launch template and
    # version are not replaced.
    with engine_cloud() as (cloud, stack):
        group = stack.worker_group
        old = _group_of(cloud, group, 2)
        ec2, asg = cloud.session.client("ec2"), cloud.session.client("autoscaling")
        spec = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
        template = spec["LaunchTemplate"]["LaunchTemplateId"]
        version = ec2.create_launch_template_version(
            LaunchTemplateId=template, SourceVersion="1", LaunchTemplateData={"InstanceType": "t3.micro"}
        )["LaunchTemplateVersion"]["VersionNumber"]
        asg.update_auto_scaling_group(
            AutoScalingGroupName=group, LaunchTemplate={"LaunchTemplateId": template, "Version": str(version)}
        )
        cloud.set_desired(group, 3)
        cloud.run_until_idle(60)
        (current,) = set(in_service(cloud, group)) - set(old)
        cloud.start_instance_refresh(group, preferences={"SkipMatching": True})
        cloud.run_until_idle(600)
        assert cloud.refresh_status(group) == "Successful"
        now = set(in_service(cloud, group))
        assert current in now and not set(old) & now and len(now) == 3


@pytest.mark.parametrize(("percentage", "at_once"), [(50, 2), (90, 1)])
def test_min_healthy_percentage_sets_how_many_are_replaced_at_once(percentage: int, at_once: int) -> None:
    # RefreshPreferences, MinHealthyPercentage: the share of desired capacity that must stay in service
    # during the refresh; at 50 % half of a group of 4 is taken out at once (terminate first), at the
    # default 90 % one at a time.
    with engine_cloud() as (cloud, stack):
        group = stack.worker_group
        _group_of(cloud, group, 4)
        waiting: list[int] = []

        def on_terminate(event: dict[str, Any], context: Any) -> None:
            waiting.append(sum(1 for s in states(cloud, group).values() if s == "Terminating:Wait"))
            complete(cloud, event["detail"])

        cloud.register_handler("OnTerminateFunction", on_terminate)
        cloud.start_instance_refresh(group, preferences={"MinHealthyPercentage": percentage})
        cloud.run_until_idle(600)
        assert cloud.refresh_status(group) == "Successful"
        assert max(waiting) == at_once and len(waiting) == 4
        assert len(in_service(cloud, group)) == 4


def test_a_checkpoint_pauses_the_refresh_and_is_announced() -> None:
    # RefreshPreferences, CheckpointPercentages / CheckpointDelay; event reference: "EC2 Auto Scaling
    # Instance Refresh Checkpoint Reached" with CheckpointPercentage and CheckpointDelay.
    with engine_cloud() as (cloud, stack):
        group = stack.worker_group
        ids = _group_of(cloud, group, 2)
        cloud.start_instance_refresh(
            group, preferences={"CheckpointPercentages": [50, 100], "CheckpointDelay": 600}
        )
        cloud.run_until_idle(300)
        assert len(set(ids) & set(in_service(cloud, group))) == 1  # one replaced, then the pause
        cloud.run_until_idle(7200)
        assert cloud.refresh_status(group) == "Successful"
        assert _refresh_events(cloud) == ["Started", "Checkpoint Reached", "Checkpoint Reached", "Succeeded"]
        reached = [e["detail"] for e in cloud.events if e["detail-type"].endswith("Checkpoint Reached")]
        assert [(d["CheckpointPercentage"], d["CheckpointDelay"]) for d in reached] == [
            ("50", "600"),
            ("100", "600"),
        ]


def test_max_instance_lifetime_keeps_asking_after_an_hour_and_waits_for_protection() -> None:
    # User Guide, "Create a custom termination policy with Lambda", Considerations: "With maximum instance
    # lifetime, Amazon EC2 Auto Scaling keeps trying to terminate the instance that is identified as
    # exceeding its maximum lifetime." "Replace Auto Scaling instances based on maximum instance lifetime":
    # protection holds an instance back until it is removed.
    with engine_cloud() as (cloud, stack):
        group = stack.manager_group
        cloud.set_max_instance_lifetime(group, 86400)
        ids = _group_of(cloud, group, 2)
        cloud.set_protection(group, [ids[0]], True)
        refusing = {"on": True}
        cloud.register_handler(
            POLICY, Recorder(lambda e: {"InstanceIDs": []} if refusing["on"] else first_suggestion(e))
        )
        cloud.clock.advance_to(cloud.start + timedelta(seconds=86400))
        cloud.run_until_idle(3 * 3600)
        assert len(cloud.policy_calls) > 60 and {c.cause for c in cloud.policy_calls} == {
            "MAX_INSTANCE_LIFETIME"
        }
        refusing["on"] = False
        cloud.run_until_idle(600)
        assert ids[1] not in in_service(cloud, group) and ids[0] in in_service(cloud, group)
        cloud.set_protection(group, [ids[0]], False)
        cloud.run_until_idle(600)
        assert not set(ids) & set(in_service(cloud, group))
