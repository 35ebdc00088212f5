"""Event routing by the template's own rules, Lambda asynchronous-invocation semantics (retries, failure
destination, DLQ, event age), duplicate and late delivery, schedules, and the AWS call log (redacted)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from tests.localcloud.fixtures.engine_kit import Recorder, engine_cloud

from autojoin.localcloud import redact
from autojoin.localcloud.patterns import matches

TOKEN = "SWMTKN-1-" + "a" * 50 + "-" + "b" * 25  # swarm's shape; never a real token


def _launch_event(group: str, iid: str = "i-0123456789abcdef0", **extra: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance-launch Lifecycle Action",
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
            "AutoScalingGroupName": group,
            "LifecycleHookName": "autojoin-launch",
            "EC2InstanceId": iid,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            **extra,
        },
    }


# --- pattern matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"source": ["a"]}, {"source": "a"}, True),
        ({"source": ["a"]}, {"source": "b"}, False),
        ({"source": ["a"]}, {}, False),
        ({"detail": {"x": ["1"]}}, {"detail": {"x": "1"}}, True),
        ({"detail": {"x": ["1"]}}, {"detail": "flat"}, False),
        ({"detail": {"x": {"y": ["1"]}}}, {"detail": {"x": {"y": "1"}}}, True),
        ({"detail": {"x": ["1"]}}, {"detail": {"x": ["0", "1"]}}, True),  # any array element
        ({"n": [5]}, {"n": 5.0}, True),
        ({"n": [None]}, {"n": None}, True),
        ({"b": [True]}, {"b": 1}, False),
        ({"s": [{"prefix": "EC2 Instance"}]}, {"s": "EC2 Instance Launch Successful"}, True),
        ({"s": [{"prefix": "EC2 Instance"}]}, {"s": 3}, False),
        ({"s": [{"prefix": {"equals-ignore-case": "ec2"}}]}, {"s": "EC2 x"}, True),
        ({"s": [{"suffix": "Action"}]}, {"s": "Lifecycle Action"}, True),
        ({"s": [{"equals-ignore-case": "abc"}]}, {"s": "ABC"}, True),
        ({"s": [{"wildcard": "i-*"}]}, {"s": "i-123"}, True),
        ({"s": [{"anything-but": ["x", "y"]}]}, {"s": "z"}, True),
        ({"s": [{"anything-but": ["x", "y"]}]}, {"s": "x"}, False),
        ({"s": [{"anything-but": "x"}]}, {}, False),  # anything-but needs the field
        ({"s": [{"anything-but": {"prefix": "Warm"}}]}, {"s": "WarmPool"}, False),
        ({"s": [{"anything-but": {"prefix": "Warm"}}]}, {"s": "EC2"}, True),
        ({"s": [{"anything-but": {"suffix": "Pool"}}]}, {"s": "WarmPool"}, False),
        ({"s": [{"anything-but": {"equals-ignore-case": ["warmpool"]}}]}, {"s": "WarmPool"}, False),
        ({"s": [{"exists": True}]}, {"s": "x"}, True),
        ({"s": [{"exists": True}]}, {}, False),
        ({"s": [{"exists": False}]}, {}, True),
        ({"s": [{"exists": False}]}, {"s": "x"}, False),
        ({"n": [{"numeric": [">", 0, "<=", 5]}]}, {"n": 5}, True),
        ({"n": [{"numeric": [">", 0, "<=", 5]}]}, {"n": 6}, False),
        ({"n": [{"numeric": ["=", 1]}]}, {"n": "1"}, False),
        ({"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"b": "2"}, True),
        ({"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"c": "3"}, False),
    ],
)
def test_event_patterns(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(
    "pattern",
    [{"s": "not-a-list"}, {"s": [{"regex": "x"}]}, {"s": [{"anything-but": {"regex": "x"}}]}],
)
def test_unsupported_patterns_are_refused(pattern: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        matches(pattern, {"s": "x"})


# --- routing ------------------------------------------------------------------------------------


def test_events_reach_only_the_functions_whose_rules_match() -> None:
    with engine_cloud() as (cloud, stack):
        recorders = {
            lid: Recorder() for lid in ("OnLaunchFunction", "OnTerminateFunction", "ResultsFunction")
        }
        for lid, fn in recorders.items():
            cloud.register_handler(lid, fn)
        cloud.deliver(_launch_event(stack.manager_group))
        cloud.deliver(_launch_event("someone-elses-group"))  # the rule names the stack's groups only
        cloud.deliver({**_launch_event(stack.manager_group), "source": "aws.ec2"})
        terminate = _launch_event(stack.worker_group)
        terminate["detail-type"] = "EC2 Instance-terminate Lifecycle Action"
        cloud.deliver(terminate)
        to_pool = json.loads(json.dumps(terminate))
        to_pool["detail"]["Destination"] = "WarmPool"  # the rule takes no warm-pool destination
        cloud.deliver(to_pool)
        today = json.loads(json.dumps(terminate))  # the shape Auto Scaling emits today
        today["detail"].update(Origin="AutoScalingGroup", Destination="EC2")
        cloud.deliver(today)
        cloud.deliver({**terminate, "detail-type": "EC2 Instance Launch Successful"})
        cloud.run_until_idle(0)
        assert [d["AutoScalingGroupName"] for d in recorders["OnLaunchFunction"].details()] == [
            stack.manager_group
        ]
        # the terminate rule matches with and without Origin/Destination, never a warm-pool destination
        assert [d.get("Destination") for d in recorders["OnTerminateFunction"].details()] == [None, "EC2"]
        assert recorders["ResultsFunction"].types() == ["EC2 Instance Launch Successful"]
        routed = [(d.detail_type, d.functions) for d in cloud.deliveries]
        assert ("EC2 Instance-launch Lifecycle Action", ()) in routed  # unmatched: delivered nowhere


def test_a_rule_without_an_invoke_permission_delivers_nothing() -> None:
    with engine_cloud() as (cloud, _stack):
        unwired = Recorder()
        cloud.register_handler("UnwiredFunction", unwired)
        cloud.deliver({"source": "test.unwired", "detail-type": "x", "detail": {}, "id": "1"})
        cloud.run_until_idle(0)
        assert unwired.events == []
        (delivery,) = cloud.deliveries
        assert delivery.rules == ("UnwiredRule",) and delivery.functions == ()
        assert [(d["rule"], d["error"]) for d in cloud.dropped] == [("UnwiredRule", "NO_PERMISSIONS")]


def test_an_uninvokable_target_sends_the_event_to_its_dead_letter_queue() -> None:
    with engine_cloud() as (cloud, stack):
        cloud.register_handler("UnwiredFunction", Recorder())
        event = {"source": "test.unwired-dlq", "detail-type": "x", "detail": {"n": 1}, "id": "2"}
        cloud.deliver(event)
        cloud.run_until_idle(0)
        (failure,) = cloud.failures
        assert (failure["rule"], failure["error"]) == ("UnwiredWithDlqRule", "NO_PERMISSIONS")
        sqs = cloud.session.client("sqs")
        (message,) = sqs.receive_message(QueueUrl=stack.physical["DeadLetterQueue"]["Ref"])["Messages"]
        assert json.loads(message["Body"]) == event


def test_a_queue_target_receives_the_event() -> None:
    with engine_cloud() as (cloud, stack):
        event = {"source": "test.queue", "detail-type": "x", "detail": {}, "id": "3"}
        cloud.deliver(event)
        cloud.run_until_idle(0)
        sqs = cloud.session.client("sqs")
        (message,) = sqs.receive_message(QueueUrl=stack.physical["FailureQueue"]["Ref"])["Messages"]
        assert json.loads(message["Body"]) == event


def test_duplicate_and_late_delivery() -> None:
    with engine_cloud() as (cloud, stack):
        launches = Recorder()
        cloud.register_handler("OnLaunchFunction", launches)
        cloud.deliver(_launch_event(stack.manager_group), duplicate=True)
        cloud.deliver(_launch_event(stack.manager_group, "i-0fedcba9876543210"), delay=300)
        cloud.run_until_idle(0)
        assert [d["EC2InstanceId"] for d in launches.details()] == ["i-0123456789abcdef0"] * 2
        cloud.advance(299)
        assert len(launches.events) == 2
        cloud.advance(1)
        assert launches.details()[-1]["EC2InstanceId"] == "i-0fedcba9876543210"
        assert [i.at - cloud.start for i in cloud.invocations] == [timedelta(0)] * 2 + [
            timedelta(seconds=300)
        ]


# --- asynchronous invocation --------------------------------------------------------------------


def test_failures_are_retried_after_one_then_two_minutes_then_sent_to_the_failure_destination() -> None:
    with engine_cloud() as (cloud, stack):

        def broken(event: dict[str, Any], context: Any) -> None:
            raise ConnectionError(f"cannot reach {TOKEN}")  # even a careless message is redacted

        cloud.register_handler("OnLaunchFunction", broken)
        event = _launch_event(stack.manager_group)
        cloud.deliver(event)
        cloud.run_until_idle(3600)
        tries = [i for i in cloud.invocations if i.function == "OnLaunchFunction"]
        assert [(i.attempt, i.outcome, i.error_type) for i in tries] == [
            (1, "error", "ConnectionError"),
            (2, "error", "ConnectionError"),
            (3, "error", "ConnectionError"),
        ]
        assert [(i.at - cloud.start).total_seconds() for i in tries] == [0, 60, 180]
        (failure,) = cloud.failures
        record = failure["record"]
        assert failure["destination"] == stack.functions["OnLaunchFunction"].on_failure
        assert record["requestContext"]["condition"] == "RetriesExhausted"
        assert record["requestContext"]["approximateInvokeCount"] == 3
        assert record["requestContext"]["functionArn"] == stack.functions["OnLaunchFunction"].arn + ":$LATEST"
        assert record["requestPayload"] == event
        assert record["responsePayload"]["errorType"] == "ConnectionError"
        assert "SWMTKN" not in json.dumps(record)
        # the same record sits in the template's FailureQueue in moto
        sqs = cloud.session.client("sqs")
        url = stack.physical["FailureQueue"]["Ref"]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert [json.loads(m["Body"]) for m in messages] == [record]


def test_a_transient_failure_succeeds_on_retry() -> None:
    with engine_cloud() as (cloud, stack):
        calls: list[int] = []

        def flaky(event: dict[str, Any], context: Any) -> str:
            calls.append(1)
            if len(calls) == 1:
                raise TimeoutError("throttled")
            return "done"

        cloud.register_handler("OnLaunchFunction", flaky)
        cloud.deliver(_launch_event(stack.manager_group))
        cloud.run_until_idle(3600)
        assert [(i.attempt, i.outcome, i.result) for i in cloud.invocations] == [
            (1, "error", None),
            (2, "ok", "done"),
        ]
        assert cloud.failures == []


def test_a_dead_letter_queue_gets_the_event_itself() -> None:
    with engine_cloud() as (cloud, stack):
        cloud.register_handler("ResultsFunction", Recorder(lambda e: 1 / 0))
        event = {**_launch_event(stack.manager_group), "detail-type": "EC2 Instance Launch Successful"}
        cloud.deliver(event)
        cloud.run_until_idle(3600)
        assert len(cloud.invocations) == 3  # default MaximumRetryAttempts 2
        (failure,) = cloud.failures
        assert failure["destination"] == stack.functions["ResultsFunction"].dlq
        sqs = cloud.session.client("sqs")
        url = stack.physical["DeadLetterQueue"]["Ref"]
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        assert json.loads(message["Body"]) == event


def test_events_older_than_the_maximum_age_go_to_the_failure_destination() -> None:
    with engine_cloud() as (cloud, stack):
        cloud.register_handler("OnTerminateFunction", Recorder(lambda e: 1 / 0))  # max age 90 s
        event = _launch_event(stack.worker_group)
        event["detail-type"] = "EC2 Instance-terminate Lifecycle Action"
        cloud.deliver(event)
        cloud.run_until_idle(3600)
        assert [i.attempt for i in cloud.invocations] == [1, 2]  # the third try would be at 180 s
        (failure,) = cloud.failures
        assert failure["record"]["requestContext"]["condition"] == "EventAgeExceeded"
        assert failure["record"]["requestContext"]["approximateInvokeCount"] == 2


def test_failures_without_a_destination_are_dropped() -> None:
    with engine_cloud() as (cloud, _stack):
        cloud.register_handler("ReconcileFunction", Recorder(lambda e: 1 / 0))
        cloud.enable_schedules()
        cloud.advance(300 + 180)
        assert cloud.failures == []
        assert [d["function"] for d in cloud.dropped] == ["ReconcileFunction"]


def test_schedules_fire_on_simulated_time_and_do_not_keep_the_cloud_busy() -> None:
    with engine_cloud() as (cloud, _stack):
        ticks = Recorder()
        cloud.register_handler("ReconcileFunction", ticks)
        assert cloud.enable_schedules() == 1
        assert cloud.run_until_idle(3600) == 0  # only schedules pending: idle
        cloud.advance(3600)
        assert len(ticks.events) == 12
        assert ticks.types() == ["Scheduled Event"] * 12
        assert ticks.events[0]["source"] == "aws.events"
        assert ticks.events[0]["resources"][0].startswith("arn:aws:events:us-east-1:123456789012:rule/")


# --- direct invoke and the module handlers ------------------------------------------------------


def test_invoke_runs_the_functions_own_module_with_a_lambda_context() -> None:
    with engine_cloud() as (cloud, stack):
        result = cloud.invoke("ReconcileFunction", {"detail-type": "Scheduled Event"})
        assert result == {"echo": "Scheduled Event", "function": stack.functions["ReconcileFunction"].name}
        (inv,) = cloud.invocations
        assert (inv.kind, inv.outcome, inv.attempt) == ("sync", "ok", 1)


def test_invoke_raises_the_handlers_error_and_passes_deps_when_asked() -> None:
    with engine_cloud() as (cloud, _stack):
        seen: dict[str, Any] = {}

        def with_deps(event: dict[str, Any], context: Any, deps: Any) -> None:
            seen["cluster"] = deps.settings.cluster
            seen["remaining"] = context.get_remaining_time_in_millis()
            raise KeyError("missing")

        cloud.register_handler("ReconcileFunction", with_deps)
        with pytest.raises(KeyError):
            cloud.invoke("ReconcileFunction", {})
        assert seen == {"cluster": "demo", "remaining": 30_000}
        assert cloud.invocations[-1].error_type == "KeyError"


def test_handlers_see_their_function_environment_only_while_they_run() -> None:
    with engine_cloud() as (cloud, stack):
        import os

        seen: dict[str, str | None] = {}

        def look(event: dict[str, Any], context: Any) -> None:
            seen.update(
                {k: os.environ.get(k) for k in ("AUTOJOIN_HANDOFF_TABLE", "AWS_LAMBDA_FUNCTION_NAME")}
            )

        cloud.register_handler("OnLaunchFunction", look)
        cloud.invoke("OnLaunchFunction", {})
        assert seen == {
            "AUTOJOIN_HANDOFF_TABLE": stack.physical["HandoffTable"]["Ref"],
            "AWS_LAMBDA_FUNCTION_NAME": stack.functions["OnLaunchFunction"].name,
        }
        assert "AUTOJOIN_HANDOFF_TABLE" not in os.environ


# --- the AWS call log ---------------------------------------------------------------------------


def test_every_call_through_the_session_is_recorded_with_secrets_redacted() -> None:
    with engine_cloud() as (cloud, stack):
        secret = stack.physical["ManagerTokenSecret"]["Ref"]
        table = stack.physical["HandoffTable"]["Ref"]

        def store(event: dict[str, Any], context: Any) -> None:
            cloud.session.client("secretsmanager").put_secret_value(SecretId=secret, SecretString=TOKEN)
            cloud.session.client("dynamodb").put_item(
                TableName=table,
                Item={"principal": {"S": "AROA:i-1"}, "token": {"S": TOKEN}, "note": {"S": f"x {TOKEN} y"}},
            )

        cloud.register_handler("OnLaunchFunction", store)
        cloud.invoke("OnLaunchFunction", {})
        put_secret, put_item = cloud.calls[-2:]
        assert (put_secret.service, put_secret.operation, put_secret.function) == (
            "secretsmanager",
            "PutSecretValue",
            "OnLaunchFunction",
        )
        assert put_secret.params == {"SecretId": secret, "SecretString": "***"}
        assert put_item.params["Item"]["token"] == "***"
        assert put_item.params["Item"]["note"] == {"S": "x *** y"}
        assert put_item.params["Item"]["principal"] == {"S": "AROA:i-1"}
        assert "SWMTKN" not in repr(cloud.calls)
        # the value really reached moto: redaction is of the log only
        value = cloud.session.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
        assert value == TOKEN
        assert cloud.calls[-1].function is None  # made outside any function


def test_redact() -> None:
    assert redact({"SecretBinary": b"x", "Token": "t", "ManagerJoinToken": "t", "Password": "p"}) == {
        "SecretBinary": "***",
        "Token": "***",
        "ManagerJoinToken": "***",
        "Password": "***",
    }
    assert redact([b"ab", TOKEN.encode(), (1, None)]) == ["<2 bytes>", "***", [1, None]]
    assert redact({"LifecycleActionToken": "uuid", "NextToken": "n"}) == {
        "LifecycleActionToken": "uuid",
        "NextToken": "n",
    }
