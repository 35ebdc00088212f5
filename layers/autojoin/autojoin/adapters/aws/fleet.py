"""AsgFleet: the Fleet port over EC2 Auto Scaling and EC2."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from autojoin.adapters.aws.errors import code_of, translate
from autojoin.domain.model import GroupInfo, InstanceInfo, LifecycleAction, LifecycleResult, Role
from autojoin.ports import CompletionOutcome, Fleet, FleetRead

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_ec2 import EC2Client

CLUSTER_TAG = "autojoin:cluster"
ROLE_TAG = "autojoin:role"
# DescribeInstances: this many ids in one filter (AWS allows 200 values a filter).
_IDS_PER_CALL = 200
_GONE_STATES = ("shutting-down", "terminated")
# The one AWS answer that means "already finished": ValidationError with this text (there is no own code).
_ALREADY_DONE = "No active Lifecycle Action found"


def _group_info(raw: Any) -> GroupInfo:
    tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
    role_tag = tags.get(ROLE_TAG)
    role = Role(role_tag) if role_tag in {r.value for r in Role} else None
    return GroupInfo(
        name=raw["AutoScalingGroupName"],
        cluster=tags.get(CLUSTER_TAG),
        role=role,
        zones=tuple(sorted(raw.get("AvailabilityZones", []))),
        desired=raw.get("DesiredCapacity", 0),
        min_size=raw.get("MinSize", 0),
        max_size=raw.get("MaxSize", 0),
        tags=tags,
    )


class AsgFleet(Fleet):
    def __init__(self, autoscaling: AutoScalingClient, ec2: EC2Client) -> None:
        self._asg = autoscaling
        self._ec2 = ec2

    def group(self, name: str) -> GroupInfo | None:
        try:
            groups = self._asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        except ClientError as exc:
            raise translate(exc, "DescribeAutoScalingGroups") from exc
        return _group_info(groups[0]) if groups else None

    def cluster_groups(self, cluster: str) -> Sequence[GroupInfo]:
        out: list[GroupInfo] = []
        try:
            pages = self._asg.get_paginator("describe_auto_scaling_groups").paginate(
                Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]}]
            )
            for page in pages:
                out.extend(_group_info(g) for g in page["AutoScalingGroups"])
        except ClientError as exc:
            raise translate(exc, "DescribeAutoScalingGroups") from exc
        return [g for g in out if g.cluster == cluster]

    def instance(self, instance_id: str) -> InstanceInfo | None:
        try:
            reservations = self._ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except ClientError as exc:
            if code_of(exc) in {"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"}:
                return None
            raise translate(exc, "DescribeInstances") from exc
        raws = [i for r in reservations for i in r["Instances"]]
        if not raws:
            return None
        asg = self._asg_instances([instance_id]).get(instance_id, {})
        return self._info(raws[0], asg)

    def read_cluster(self, cluster: str) -> FleetRead:
        """One DescribeAutoScalingGroups, filtered by the cluster tag (it lists each group's instances with
        their zone, type, lifecycle state, health and protection), and one DescribeInstances that asks EC2
        only which of them are shutting down or terminated (a machine that died outside Auto Scaling is
        still InService there until a health check). The answer is usually empty, so the read stays small
        at any group size. Instances in a read carry no private IP (a pass that needs one asks
        :meth:`instance`)."""
        raws: list[Any] = []
        try:
            pages = self._asg.get_paginator("describe_auto_scaling_groups").paginate(
                Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]}]
            )
            for page in pages:
                raws.extend(page["AutoScalingGroups"])
        except ClientError as exc:
            raise translate(exc, "DescribeAutoScalingGroups") from exc
        groups: list[GroupInfo] = []
        rows: dict[str, list[dict[str, Any]]] = {}
        for raw in raws:
            info = _group_info(raw)
            if info.cluster != cluster:
                continue
            groups.append(info)
            rows[info.name] = [dict(i) for i in raw.get("Instances", [])]
        ids = [row["InstanceId"] for members in rows.values() for row in members]
        gone: dict[str, str] = {}
        for start in range(0, len(ids), _IDS_PER_CALL):
            try:
                ec2_pages = self._ec2.get_paginator("describe_instances").paginate(
                    Filters=[
                        {"Name": "instance-id", "Values": ids[start : start + _IDS_PER_CALL]},
                        {"Name": "instance-state-name", "Values": list(_GONE_STATES)},
                    ]
                )
                for ec2_page in ec2_pages:
                    found = [i for r in ec2_page["Reservations"] for i in r["Instances"]]
                    gone.update({i["InstanceId"]: i["State"]["Name"] for i in found})
            except ClientError as exc:
                raise translate(exc, "DescribeInstances") from exc
        members = {
            name: tuple(
                sorted(
                    (
                        InstanceInfo(
                            instance_id=row["InstanceId"],
                            az=row.get("AvailabilityZone", ""),
                            group=name,
                            instance_type=row.get("InstanceType"),
                            state=gone.get(row["InstanceId"], "running"),
                            lifecycle_state=row.get("LifecycleState"),
                            protected_from_scale_in=bool(row.get("ProtectedFromScaleIn", False)),
                            healthy=row.get("HealthStatus", "HEALTHY").upper() == "HEALTHY",
                        )
                        for row in group_rows
                    ),
                    key=lambda i: i.instance_id,
                )
            )
            for name, group_rows in rows.items()
        }
        return FleetRead(tuple(groups), members)

    def instances(self, group: str) -> Sequence[InstanceInfo]:
        try:
            groups = self._asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
                "AutoScalingGroups"
            ]
        except ClientError as exc:
            raise translate(exc, "DescribeAutoScalingGroups") from exc
        if not groups:
            return []
        members = {i["InstanceId"]: dict(i) for i in groups[0].get("Instances", [])}
        if not members:
            return []
        try:
            reservations = self._ec2.describe_instances(InstanceIds=list(members))["Reservations"]
        except ClientError as exc:
            raise translate(exc, "DescribeInstances") from exc
        out = [self._info(i, members.get(i["InstanceId"], {})) for r in reservations for i in r["Instances"]]
        return sorted(out, key=lambda i: i.instance_id)

    def _asg_instances(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        try:
            rows = self._asg.describe_auto_scaling_instances(InstanceIds=ids)["AutoScalingInstances"]
        except ClientError as exc:
            raise translate(exc, "DescribeAutoScalingInstances") from exc
        return {r["InstanceId"]: dict(r) for r in rows}

    @staticmethod
    def _info(raw: Any, asg: dict[str, Any]) -> InstanceInfo:
        tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
        return InstanceInfo(
            instance_id=raw["InstanceId"],
            az=raw.get("Placement", {}).get("AvailabilityZone", asg.get("AvailabilityZone", "")),
            group=asg.get("AutoScalingGroupName") or tags.get("aws:autoscaling:groupName"),
            instance_type=raw.get("InstanceType"),
            private_ip=raw.get("PrivateIpAddress"),
            state=raw.get("State", {}).get("Name", "unknown"),
            lifecycle_state=asg.get("LifecycleState"),
            protected_from_scale_in=bool(asg.get("ProtectedFromScaleIn", False)),
            healthy=asg.get("HealthStatus", "HEALTHY").upper() == "HEALTHY",
        )

    def complete(self, action: LifecycleAction, result: LifecycleResult) -> CompletionOutcome:
        params: dict[str, Any] = {
            "LifecycleHookName": action.hook,
            "AutoScalingGroupName": action.group,
            "LifecycleActionResult": result.value,
        }
        if action.token:
            params["LifecycleActionToken"] = action.token
        else:
            params["InstanceId"] = action.instance_id
        try:
            self._asg.complete_lifecycle_action(**params)
        except ClientError as exc:
            if code_of(exc) == "ValidationError" and _ALREADY_DONE in str(exc):
                return CompletionOutcome.ALREADY_DONE
            raise translate(exc, "CompleteLifecycleAction") from exc
        return CompletionOutcome.COMPLETED

    def heartbeat(self, action: LifecycleAction) -> bool:
        params: dict[str, Any] = {"LifecycleHookName": action.hook, "AutoScalingGroupName": action.group}
        if action.token:
            params["LifecycleActionToken"] = action.token
        else:
            params["InstanceId"] = action.instance_id
        try:
            self._asg.record_lifecycle_action_heartbeat(**params)
        except ClientError as exc:
            if code_of(exc) == "ValidationError" and _ALREADY_DONE in str(exc):
                return False
            raise translate(exc, "RecordLifecycleActionHeartbeat") from exc
        return True

    def set_protection(self, group: str, instance_ids: Sequence[str], protected: bool) -> None:
        if not instance_ids:
            return
        try:
            self._asg.set_instance_protection(
                AutoScalingGroupName=group, InstanceIds=list(instance_ids), ProtectedFromScaleIn=protected
            )
        except ClientError as exc:
            raise translate(exc, "SetInstanceProtection") from exc

    def set_desired(self, group: str, desired: int) -> None:
        info = self.group(group)
        try:
            if info is not None and desired > info.max_size:
                self._asg.update_auto_scaling_group(AutoScalingGroupName=group, MaxSize=desired)
            self._asg.set_desired_capacity(
                AutoScalingGroupName=group, DesiredCapacity=desired, HonorCooldown=False
            )
        except ClientError as exc:
            raise translate(exc, "SetDesiredCapacity") from exc

    def terminate(self, instance_id: str, *, decrement: bool) -> None:
        try:
            self._asg.terminate_instance_in_auto_scaling_group(
                InstanceId=instance_id, ShouldDecrementDesiredCapacity=decrement
            )
        except ClientError as exc:
            raise translate(exc, "TerminateInstanceInAutoScalingGroup") from exc
