"""AZ-balanced launches, determinism, health replacement, zone outage and recovery."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from tests.localcloud.fixtures.engine_kit import (
    Recorder,
    ec2_state,
    engine_cloud,
    first_suggestion,
    in_service,
    state_of,
    states,
    wire_lifecycle,
)

from autojoin.localcloud import LocalCloudError


def _zones(cloud: Any, group: str) -> Counter[str]:
    return Counter(i.az for i in cloud.instances(group) if i.lifecycle_state == "InService")


@pytest.mark.parametrize(
    ("desired", "spread"), [(3, [1, 1, 1]), (5, [1, 2, 2]), (9, [3, 3, 3]), (7, [2, 2, 3])]
)
def test_launches_are_balanced_across_the_groups_zones(desired: int, spread: list[int]) -> None:
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        cloud.set_desired(stack.manager_group, desired)
        cloud.run_until_idle(60)
        assert sorted(_zones(cloud, stack.manager_group).values()) == spread
        assert sorted(cloud.layout(stack.manager_group).values()) == spread
        # each instance sits in its zone's subnet, as a launch with Placement + SubnetId would put it
        ec2 = cloud.session.client("ec2")
        for inst in cloud.instances(stack.manager_group):
            raw = ec2.describe_instances(InstanceIds=[inst.instance_id])["Reservations"][0]["Instances"][0]
            subnet = ec2.describe_subnets(SubnetIds=[raw["SubnetId"]])["Subnets"][0]
            assert subnet["AvailabilityZone"] == inst.az == raw["Placement"]["AvailabilityZone"]
            tags = {t["Key"]: t["Value"] for t in raw["Tags"]}
            assert tags["aws:autoscaling:groupName"] == stack.manager_group
            assert tags["Name"] == "demo-manager"  # PropagateAtLaunch
            assert "autojoin:role" not in tags  # not propagated


def _timeline(seed: int) -> list[tuple[str, str, str, str]]:
    with engine_cloud(seed=seed) as (cloud, stack):
        wire_lifecycle(cloud)
        cloud.register_handler("TerminationPolicyFunction", Recorder(first_suggestion))
        cloud.set_desired(stack.manager_group, 5)
        cloud.set_desired(stack.worker_group, 4)
        cloud.run_until_idle(600)
        cloud.set_desired(stack.manager_group, 3)
        cloud.run_until_idle(600)
        return [
            (e["time"], e["detail-type"], e["detail"].get("EC2InstanceId", ""), e["id"]) for e in cloud.events
        ] + [(i.instance_id, i.az, i.lifecycle_state or "", "") for i in cloud.instances(stack.manager_group)]


def test_the_same_seed_gives_the_same_ids_zones_and_timeline() -> None:
    first, again, other = _timeline(7), _timeline(7), _timeline(8)
    assert first == again
    assert first != other
    ids = {row[2] for row in first if row[2].startswith("i-")}
    assert len(ids) >= 9
    assert ids.isdisjoint({row[2] for row in other if row[2].startswith("i-")})


def test_a_crashed_instance_is_replaced_after_the_health_check() -> None:
    with engine_cloud() as (cloud, stack):
        handlers = wire_lifecycle(cloud)
        seen: list[tuple[str, str]] = []
        cloud.subscribe(lambda what, iid: seen.append((what, iid)))
        cloud.set_desired(stack.manager_group, 3)
        cloud.run_until_idle(60)
        victim = in_service(cloud, stack.manager_group)[0]
        cloud.crash_instance(victim)
        cloud.crash_instance(victim)  # twice is once
        assert ec2_state(cloud, victim) == "stopped"
        assert ("crashed", victim) in seen
        cloud.advance(29)
        assert state_of(cloud, victim) == "InService"  # not yet noticed
        cloud.run_until_idle(600)
        assert ec2_state(cloud, victim) == "terminated"
        assert len(in_service(cloud, stack.manager_group)) == 3
        assert victim not in in_service(cloud, stack.manager_group)
        (gone,) = [
            e
            for e in handlers["ResultsFunction"].events
            if e["detail"]["EC2InstanceId"] == victim
            and e["detail-type"] == "EC2 Instance Terminate Successful"
        ]
        assert "status checks failure" in gone["detail"]["Cause"]


def test_ec2_terminate_instances_on_a_member_is_replaced_without_hooks() -> None:
    with engine_cloud() as (cloud, stack):
        handlers = wire_lifecycle(cloud)
        terminations = Recorder()
        cloud.register_handler("OnTerminateFunction", terminations)
        cloud.set_desired(stack.manager_group, 2)
        cloud.run_until_idle(60)
        victim = in_service(cloud, stack.manager_group)[0]
        cloud.session.client("ec2").terminate_instances(InstanceIds=[victim])
        cloud.run_until_idle(600)
        assert terminations.events == []
        assert len(in_service(cloud, stack.manager_group)) == 2
        assert victim not in states(cloud, stack.manager_group)
        assert "EC2 Instance Terminate Successful" in handlers["ResultsFunction"].types()


def test_zone_outage_best_effort_launches_replacements_in_healthy_zones() -> None:
    with engine_cloud() as (cloud, stack):
        wire_lifecycle(cloud)
        cloud.register_handler("TerminationPolicyFunction", Recorder(first_suggestion))
        cloud.set_desired(stack.manager_group, 3)
        cloud.run_until_idle(60)
        hit = cloud.zone_outage("us-east-1a")
        assert len(hit) == 1
        cloud.run_until_idle(900)
        assert _zones(cloud, stack.manager_group)["us-east-1a"] == 0
        assert sum(_zones(cloud, stack.manager_group).values()) == 3
        # recovery: Auto Scaling rebalances (launch in 1a first, then a termination in the largest AZ)
        cloud.zone_recover("us-east-1a")
        cloud.run_until_idle(3600)
        assert sorted(_zones(cloud, stack.manager_group).values()) == [1, 1, 1]
        # the rebalance asks the policy (Cause REBALANCE), launches, then scales in (Cause SCALE_IN)
        assert [c.cause for c in cloud.policy_calls] == ["REBALANCE", "SCALE_IN"]


def test_zone_outage_balanced_only_keeps_trying_the_impaired_zone() -> None:
    with engine_cloud() as (cloud, stack):
        handlers = wire_lifecycle(cloud)
        cloud.set_desired(stack.worker_group, 3)
        cloud.run_until_idle(60)
        cloud.zone_outage("us-east-1b")
        cloud.run_until_idle(700)
        failed = [d for d in handlers["ResultsFunction"].details() if d["StatusCode"] == "Failed"]
        assert failed and {d["Details"]["Availability Zone"] for d in failed} == {"us-east-1b"}
        assert failed[0]["EC2InstanceId"] == ""
        assert sum(_zones(cloud, stack.worker_group).values()) == 2
        cloud.zone_recover("us-east-1b")
        cloud.run_until_idle(600)
        assert _zones(cloud, stack.worker_group) == Counter(
            {"us-east-1a": 1, "us-east-1b": 1, "us-east-1c": 1}
        )


def test_controls_reject_unknown_names() -> None:
    with engine_cloud() as (cloud, stack):
        with pytest.raises(LocalCloudError, match="no availability zone"):
            cloud.zone_outage("eu-west-1a")
        with pytest.raises(LocalCloudError, match="no Auto Scaling group"):
            cloud.set_desired("nope", 1)
        with pytest.raises(LocalCloudError, match="negative"):
            cloud.set_desired(stack.worker_group, -1)
        with pytest.raises(LocalCloudError, match="outside"):
            cloud.set_desired(stack.worker_group, 301, adjust_bounds=False)
        with pytest.raises(LocalCloudError, match="no function"):
            cloud.set_termination_policy(stack.worker_group, "Nope")
        with pytest.raises(LocalCloudError, match="no function"):
            cloud.invoke("Nope", {})
        cloud.set_desired(stack.worker_group, 1, adjust_bounds=False)
        assert cloud.engine.group(stack.worker_group).desired_capacity == 1
