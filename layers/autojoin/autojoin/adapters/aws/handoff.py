"""DynamoHandOff: the read-once, per-instance join ticket (see docs/token-delivery.md).

The row's key is the instance principal "<instance role id>:<instance id>" — exactly the aws:userid of
that instance's credentials — so IAM (dynamodb:LeadingKeys = ${aws:userid}) lets each instance reach its
own row only. The node agent takes it with one DeleteItem(ReturnValues=ALL_OLD).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from autojoin.adapters.aws.errors import translate
from autojoin.domain.model import Role
from autojoin.errors import BadInput
from autojoin.ports import HandOff, JoinTicket

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def principal(role_id: str, instance_id: str) -> str:
    return f"{role_id}:{instance_id}"


class DynamoHandOff(HandOff):
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        role_ids: Mapping[Role, str],
        now: Callable[[], datetime],
    ) -> None:
        self._db = client
        self._table = table
        self._role_ids = dict(role_ids)
        self._now = now
        self._roles_offered: dict[str, Role] = {}

    def _principal(self, role: Role, instance_id: str) -> str:
        role_id = self._role_ids.get(role)
        if not role_id:
            raise BadInput(f"no instance role id configured for {role.value}")
        return principal(role_id, instance_id)

    def offer(self, instance_id: str, ticket: JoinTicket, ttl_seconds: int) -> None:
        expires = int(self._now().timestamp()) + ttl_seconds
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "principal": {"S": self._principal(ticket.role, instance_id)},
                    "cluster": {"S": ticket.cluster},
                    "role": {"S": ticket.role.value},
                    "token": {"S": ticket.token.get_secret_value()},
                    "managers": {"L": [{"S": a} for a in ticket.manager_addresses]},
                    "expires_at": {"N": str(expires)},
                },
            )
        except ClientError as exc:
            raise translate(exc, "PutItem") from None  # `from None`: the request carried a token
        self._roles_offered[instance_id] = ticket.role

    def withdraw(self, instance_id: str) -> None:
        roles = [self._roles_offered.pop(instance_id)] if instance_id in self._roles_offered else list(Role)
        for role in roles:
            if not self._role_ids.get(role):
                continue
            try:
                self._db.delete_item(
                    TableName=self._table, Key={"principal": {"S": self._principal(role, instance_id)}}
                )
            except ClientError as exc:
                raise translate(exc, "DeleteItem") from exc
