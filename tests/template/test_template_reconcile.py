"""The reconciler's block of template.yaml: its triggers, the alarm topic every alarm notifies, the optional
e-mail subscription, the alarms on its metrics and the dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.template import template_model as tm


def props(logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = tm.resources()[logical_id]["Properties"]
    return found


def test_reconcile_runs_on_its_schedule_and_on_launch_and_terminate_results() -> None:
    raw = tm.raw()["Resources"]["ReconcileFunction"]["Properties"]["Events"]
    assert raw["Tick"]["Type"] == "Schedule"
    assert raw["Tick"]["Properties"]["Schedule"] == {"Ref": "ReconcileSchedule"}
    pattern = raw["LaunchTerminateResults"]["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.autoscaling"]
    assert set(pattern["detail-type"]) == {
        "EC2 Instance Launch Successful",
        "EC2 Instance Launch Unsuccessful",
        "EC2 Instance Terminate Successful",
        "EC2 Instance Terminate Unsuccessful",
    }
    assert pattern["detail"]["AutoScalingGroupName"] == [
        {"Fn::Sub": "${AWS::StackName}-manager"},
        {"Fn::Sub": "${AWS::StackName}-worker"},
    ]
    env = props("ReconcileFunction")["Environment"]["Variables"]
    assert env["AUTOJOIN_DRY_RUN"] == {"Ref": "DryRun"}
    assert tm.raw()["Parameters"]["DryRun"]["AllowedValues"] == ["true", "false"]


def test_every_alarm_notifies_the_alarm_topic() -> None:
    alarms = {k: v for k, v in tm.resources().items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert {
        "QuorumMarginAlarm",
        "ZoneToleranceAlarm",
        "RetainedInstanceAlarm",
        "ReconcileErrorsAlarm",
    } <= set(alarms)
    assert "FailureQueueDepthAlarm" in alarms
    for name, alarm in alarms.items():
        assert {"Ref": "AlarmTopic"} in alarm["Properties"].get("AlarmActions", []), name


def test_alarms_on_the_reconciler_metrics() -> None:
    margin = props("QuorumMarginAlarm")
    assert (margin["MetricName"], margin["ComparisonOperator"], margin["Threshold"]) == (
        "QuorumMargin",
        "LessThanOrEqualToThreshold",
        0,
    )
    tolerance = props("ZoneToleranceAlarm")
    assert tolerance["Threshold"] == {"Ref": "ZoneToleranceTarget"}
    assert tolerance["ComparisonOperator"] == "LessThanThreshold"
    for name in ("QuorumMarginAlarm", "ZoneToleranceAlarm", "RetainedInstanceAlarm"):
        p = props(name)
        assert p["Namespace"] == "Autojoin"
        assert {"Name": "cluster", "Value": {"Ref": "ClusterName"}} in p["Dimensions"]


def test_the_e_mail_subscription_is_optional() -> None:
    sub = tm.raw()["Resources"]["AlarmEmailSubscription"]
    assert sub["Condition"] == "HasAlarmEmail"
    assert sub["Properties"]["Protocol"] == "email"
    assert tm.raw()["Parameters"]["AlarmEmail"]["Default"] == ""


def test_the_dashboard_is_json_and_shows_every_alarm() -> None:
    body = tm.raw()["Resources"]["OperatorDashboard"]["Properties"]["DashboardBody"]
    text = body["Fn::Sub"] if isinstance(body, dict) else body
    alarms = re.findall(r"\$\{(\w+)\.Arn\}", text)
    doc = json.loads(re.sub(r"\$\{[^}]+\}", "1", text))
    assert {w["type"] for w in doc["widgets"]} >= {"text", "alarm", "metric"}
    every = {k for k, v in tm.raw()["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert every == set(alarms), "the dashboard's alarm widget lists every alarm"
