"""SsmCommandRunner: the happy path on moto, the error paths on botocore's Stubber."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from autojoin.adapters.aws.ssm_runner import SsmCommandRunner
from autojoin.errors import NodeNotReady, NotFound, TransientAwsError, Unreachable
from autojoin.ports import CommandResult

INSTANCE = "i-0123456789abcdef0"
CMD = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("ssm", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def expect_send(stub: Stubber, command: str = "docker node ls -q", timeout: str = "60") -> None:
    stub.add_response(
        "send_command",
        {"Command": {"CommandId": CMD}},
        {
            "InstanceIds": [INSTANCE],
            "DocumentName": "AWS-RunShellScript",
            "Parameters": {"commands": [command], "executionTimeout": [timeout]},
            "TimeoutSeconds": ANY,
        },
    )


def invocation(status: str, code: int = 0, out: str = "", err: str = "") -> dict[str, Any]:
    return {
        "CommandId": CMD,
        "InstanceId": INSTANCE,
        "Status": status,
        "ResponseCode": code,
        "StandardOutputContent": out,
        "StandardErrorContent": err,
    }


def expect_poll(stub: Stubber, status: str, **kw: Any) -> None:
    stub.add_response(
        "get_command_invocation", invocation(status, **kw), {"CommandId": CMD, "InstanceId": INSTANCE}
    )


def test_moto_happy_path_sends_the_quoted_argv_and_returns_success() -> None:
    with mock_aws():
        ec2 = boto3.client("ec2")
        image = ec2.describe_images()["Images"][0]["ImageId"]
        instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        ssm = boto3.client("ssm")
        sleeps = Sleeps()
        runner = SsmCommandRunner(ssm, sleep=sleeps)
        result = runner.run(instance, ["docker", "node", "ls", "--format", "{{json .}}"])
        assert result == CommandResult(0, "", "")
        sent = ssm.list_commands(InstanceId=instance)["Commands"]
        assert sent[0]["Parameters"]["commands"] == ["docker node ls --format '{{json .}}'"]
        assert sent[0]["DocumentName"] == "AWS-RunShellScript"
        assert sleeps.calls == [0.5]


def test_refuses_a_token_without_sending_or_echoing_it(stubbed: tuple[Any, Stubber]) -> None:
    client, _stub = stubbed  # no response queued: any AWS call would fail the stub
    runner = SsmCommandRunner(client, sleep=Sleeps())
    with pytest.raises(ValueError) as caught:
        runner.run(INSTANCE, ["docker", "swarm", "join", "--token", "SWMTKN-1-abc-def", "10.0.0.1:2377"])
    assert "SWMTKN-1-abc" not in str(caught.value)
    with pytest.raises(ValueError, match="empty"):
        runner.run(INSTANCE, [])


def test_polls_with_exponential_backoff_until_a_terminal_status(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    expect_send(stub)
    stub.add_client_error("get_command_invocation", "InvocationDoesNotExist")
    expect_poll(stub, "Pending")
    expect_poll(stub, "InProgress")
    expect_poll(stub, "Delayed")
    expect_poll(stub, "InProgress")
    expect_poll(stub, "Success", out="abc\n")
    sleeps = Sleeps()
    result = SsmCommandRunner(client, sleep=sleeps, poll_initial=0.5, poll_max=3.0).run(
        INSTANCE, ["docker", "node", "ls", "-q"]
    )
    assert result == CommandResult(0, "abc\n", "")
    assert sleeps.calls == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_a_failed_command_is_a_result_with_its_exit_code_and_outputs_are_capped(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stub = stubbed
    expect_send(stub)
    expect_poll(stub, "Failed", code=1, out="x" * 50, err="Error response from daemon: boom")
    result = SsmCommandRunner(client, sleep=Sleeps(), output_limit=10).run(
        INSTANCE, ["docker", "node", "ls", "-q"]
    )
    assert result == CommandResult(1, "x" * 10, "Error resp")


@pytest.mark.parametrize("status", ["Undeliverable", "TimedOut", "Cancelled", "Terminated"])
def test_undeliverable_timed_out_cancelled_are_unreachable(stubbed: tuple[Any, Stubber], status: str) -> None:
    client, stub = stubbed
    expect_send(stub)
    expect_poll(stub, status)
    with pytest.raises(Unreachable, match=status):
        SsmCommandRunner(client, sleep=Sleeps()).run(INSTANCE, ["docker", "node", "ls", "-q"])


def test_timeout_cancels_the_command_and_is_unreachable(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    expect_send(stub, timeout="4")
    for _ in range(3):
        expect_poll(stub, "InProgress")
    stub.add_response("cancel_command", {}, {"CommandId": CMD, "InstanceIds": [INSTANCE]})
    sleeps = Sleeps()
    with pytest.raises(Unreachable, match="timed out"):
        SsmCommandRunner(client, sleep=sleeps, poll_initial=1.0).run(
            INSTANCE, ["docker", "node", "ls", "-q"], timeout=4
        )
    assert sleeps.calls == [1.0, 2.0, 1.0]  # never sleeps past the deadline


def test_a_command_ssm_never_registers_is_unreachable_and_cancelled(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    expect_send(stub, command="docker info")
    for _ in range(3):
        stub.add_client_error("get_command_invocation", "InvocationDoesNotExist")
    stub.add_client_error("cancel_command", "InvalidCommandId")  # cancel is best effort
    with pytest.raises(Unreachable, match="never registered"):
        SsmCommandRunner(client, sleep=Sleeps(), not_yet_attempts=3).run(INSTANCE, ["docker", "info"])


def test_an_instance_ssm_does_not_manage_is_unreachable(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    stub.add_client_error("send_command", "UnsupportedPlatformType")
    with pytest.raises(Unreachable, match="UnsupportedPlatformType") as caught:
        SsmCommandRunner(client, sleep=Sleeps()).run(INSTANCE, ["docker", "info"])
    assert not isinstance(caught.value, NodeNotReady)


def test_an_instance_ssm_does_not_know_yet_is_not_ready(stubbed: tuple[Any, Stubber]) -> None:
    """A booting instance has not registered with SSM: not ready yet (the launch waits), not dead."""
    client, stub = stubbed
    stub.add_client_error("send_command", "InvalidInstanceId")
    with pytest.raises(NodeNotReady, match="InvalidInstanceId"):
        SsmCommandRunner(client, sleep=Sleeps()).run(INSTANCE, ["docker", "info"])


@pytest.mark.parametrize("code", ["ThrottlingException", "Throttling"])
def test_throttling_is_transient(stubbed: tuple[Any, Stubber], code: str) -> None:
    client, stub = stubbed
    stub.add_client_error("send_command", code)
    with pytest.raises(TransientAwsError):
        SsmCommandRunner(client, sleep=Sleeps()).run(INSTANCE, ["docker", "info"])
    expect_send(stub, command="docker info")
    stub.add_client_error("get_command_invocation", code)
    with pytest.raises(TransientAwsError):
        SsmCommandRunner(client, sleep=Sleeps()).run(INSTANCE, ["docker", "info"])


def test_other_client_errors_are_translated_or_propagate(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    stub.add_client_error("send_command", "InvalidDocument", http_status_code=400)
    with pytest.raises(Exception) as caught:
        SsmCommandRunner(client, sleep=Sleeps()).run(INSTANCE, ["docker", "info"])
    assert "InvalidDocument" in str(caught.value)
    stub.add_client_error("send_command", "InternalServerError", http_status_code=500)
    with pytest.raises(TransientAwsError):
        SsmCommandRunner(client, sleep=Sleeps()).run(INSTANCE, ["docker", "info"])
    stub.add_client_error("send_command", "ResourceNotFoundException", http_status_code=400)
    with pytest.raises(NotFound):
        SsmCommandRunner(client, sleep=Sleeps()).run(INSTANCE, ["docker", "info"])
