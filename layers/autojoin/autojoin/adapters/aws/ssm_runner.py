"""SsmCommandRunner: the production CommandRunner (SSM Run Command, AWS-RunShellScript).

SendCommand with the argv shell-quoted into ``commands``, then GetCommandInvocation with exponential
backoff until a terminal status or the timeout (then CancelCommand). An argv holding a join token is
refused before anything is sent: SSM keeps command parameters in its history.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from autojoin.adapters.aws.errors import TRANSIENT_CODES, code_of, translate
from autojoin.errors import NodeNotReady, TransientAwsError, Unreachable
from autojoin.ports import CommandResult, CommandRunner

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

RUNNING = frozenset({"Pending", "InProgress", "Delayed"})
UNREACHABLE = frozenset({"Undeliverable", "TimedOut", "Cancelled", "Cancelling", "Terminated"})
# SendCommand: the instance is not (or no longer) managed by SSM
NOT_MANAGED = frozenset({"UnsupportedPlatformType"})
# SendCommand: the instance is not registered with SSM (yet: it is still booting) or is gone
NOT_REGISTERED = "InvalidInstanceId"
NOT_YET = "InvocationDoesNotExist"  # GetCommandInvocation right after SendCommand
TOKEN_MARK = "SWMTKN-"  # noqa: S105 - the prefix of every swarm join token, not a password


class SsmCommandRunner(CommandRunner):
    def __init__(
        self,
        ssm_client: SSMClient | Any,
        *,
        sleep: Callable[[float], None] = time.sleep,
        poll_initial: float = 0.5,
        poll_max: float = 5.0,
        output_limit: int = 24000,
        document: str = "AWS-RunShellScript",
        not_yet_attempts: int = 5,
    ) -> None:
        self._ssm = ssm_client
        self._sleep = sleep
        self._poll_initial = poll_initial
        self._poll_max = poll_max
        self._output_limit = output_limit
        self._document = document
        self._not_yet_attempts = not_yet_attempts

    def run(self, instance_id: str, argv: Sequence[str], *, timeout: float = 60.0) -> CommandResult:
        if not argv:
            raise ValueError("empty argv")
        if any(TOKEN_MARK in arg for arg in argv):
            raise ValueError("refusing to send a join token through SSM (argv holds one)")
        command_id = self._send(instance_id, shlex.join(argv), timeout)
        return self._wait(instance_id, command_id, timeout)

    def _send(self, instance_id: str, command: str, timeout: float) -> str:
        try:
            resp = self._ssm.send_command(
                InstanceIds=[instance_id],
                DocumentName=self._document,
                Parameters={"commands": [command], "executionTimeout": [str(max(1, int(timeout)))]},
                TimeoutSeconds=max(30, int(timeout)),  # delivery timeout (SSM's minimum is 30 s)
            )
        except ClientError as exc:
            if code_of(exc) == NOT_REGISTERED:
                raise NodeNotReady(f"SSM does not know {instance_id} (yet): {code_of(exc)}") from exc
            if code_of(exc) in NOT_MANAGED:
                raise Unreachable(f"SSM cannot reach {instance_id}: {code_of(exc)}") from exc
            raise self._translate(exc, "SendCommand") from exc
        return str(resp["Command"]["CommandId"])

    def _wait(self, instance_id: str, command_id: str, timeout: float) -> CommandResult:
        waited = 0.0
        delay = self._poll_initial
        not_yet = 0
        while True:
            self._sleep(delay)
            waited += delay
            try:
                inv = self._ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
            except ClientError as exc:
                if code_of(exc) != NOT_YET:
                    raise self._translate(exc, "GetCommandInvocation") from exc
                not_yet += 1
                if not_yet >= self._not_yet_attempts:
                    self._cancel(instance_id, command_id)
                    raise Unreachable(f"SSM never registered the command on {instance_id}") from exc
            else:
                status = str(inv.get("Status", ""))
                if status in UNREACHABLE:
                    raise Unreachable(f"SSM command on {instance_id}: {status}")
                if status not in RUNNING:  # Success / Failed: the command ran
                    return CommandResult(
                        exit_code=int(inv.get("ResponseCode", -1)),
                        stdout=str(inv.get("StandardOutputContent", ""))[: self._output_limit],
                        stderr=str(inv.get("StandardErrorContent", ""))[: self._output_limit],
                    )
            if waited >= timeout:
                self._cancel(instance_id, command_id)
                raise Unreachable(f"SSM command on {instance_id} timed out after {timeout:.0f} s")
            delay = min(delay * 2, self._poll_max, max(timeout - waited, 0.01))

    def _cancel(self, instance_id: str, command_id: str) -> None:
        with contextlib.suppress(ClientError):  # best effort: it may have finished in the meantime
            self._ssm.cancel_command(CommandId=command_id, InstanceIds=[instance_id])

    @staticmethod
    def _translate(exc: ClientError, what: str) -> Exception:
        if code_of(exc) in TRANSIENT_CODES:
            return TransientAwsError(f"{what}: {code_of(exc)}")
        return translate(exc, what)
