"""DynamoStateStore: cluster state in one DynamoDB table (pk = cluster#NAME, sk = kind).

Items: ``snapshot`` (the ClusterView as JSON), ``bootstrap`` (who claimed the first init, and whether it
finished), ``lease`` (holder + expiry, conditional writes), ``pending#<instance>`` (a launch waiting for
the cluster), ``removal#<instance>`` (a terminate action waiting until its removal is safe),
``reconcile`` (the reconciler's memory: zone watches, its surge, its last decisions). Idempotency records
of Powertools live in the same table under their own pk.

Snapshot format: ``view`` is ``ClusterView.model_dump_json()``. A DynamoDB item holds at most 400 KB, so a
view whose JSON exceeds SNAPSHOT_BUDGET is stored summarised (:meth:`ClusterView.summarised`: every
manager, the notable workers, every worker counted per AZ; ``workers_listed`` false).

Lease: one item per cluster, ``holder`` + ``expires_at`` (epoch seconds), taken and renewed by one
conditional PutItem (free, expired, or already ours) and released by a conditional DeleteItem (only
ours), so a crashed holder's lease simply expires and nobody can release another's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from autojoin.adapters.aws.errors import code_of, translate
from autojoin.domain.model import ClusterView, LifecycleAction, Role
from autojoin.domain.rebalance import ReconcileRecord
from autojoin.ports import StateStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_CONDITION_FAILED = "ConditionalCheckFailedException"
SNAPSHOT_BUDGET = 350_000  # bytes of view JSON stored as is; more is summarised (an item holds 400 KB)


def _pk(cluster: str) -> dict[str, str]:
    return {"S": f"cluster#{cluster}"}


class DynamoStateStore(StateStore):
    def __init__(self, client: DynamoDBClient, table: str, now: Callable[[], datetime]) -> None:
        self._db = client
        self._table = table
        self._now = now

    def _epoch(self) -> int:
        return int(self._now().timestamp())

    def _get(self, cluster: str, sk: str) -> dict[str, Any] | None:
        try:
            item = self._db.get_item(
                TableName=self._table, Key={"pk": _pk(cluster), "sk": {"S": sk}}, ConsistentRead=True
            ).get("Item")
        except ClientError as exc:
            raise translate(exc, "GetItem") from exc
        return dict(item) if item else None

    def _put(
        self, item: dict[str, Any], condition: str | None = None, values: dict[str, Any] | None = None
    ) -> bool:
        params: dict[str, Any] = {"TableName": self._table, "Item": item}
        if condition:
            params["ConditionExpression"] = condition
        if values:
            params["ExpressionAttributeValues"] = values
        try:
            self._db.put_item(**params)
        except ClientError as exc:
            if code_of(exc) == _CONDITION_FAILED:
                return False
            raise translate(exc, "PutItem") from exc
        return True

    # --- snapshot ---------------------------------------------------------------------------------
    def snapshot(self, cluster: str) -> ClusterView | None:
        item = self._get(cluster, "snapshot")
        return ClusterView.model_validate_json(item["view"]["S"]) if item else None

    def save_snapshot(self, view: ClusterView) -> None:
        text = view.model_dump_json()
        if len(text) > SNAPSHOT_BUDGET:
            text = view.summarised().model_dump_json()
        self._put(
            {
                "pk": _pk(view.cluster),
                "sk": {"S": "snapshot"},
                "view": {"S": text},
                "updated_at": {"N": str(self._epoch())},
            }
        )

    # --- bootstrap --------------------------------------------------------------------------------
    def claim_bootstrap(self, cluster: str, instance_id: str) -> bool:
        item = {
            "pk": _pk(cluster),
            "sk": {"S": "bootstrap"},
            "owner": {"S": instance_id},
            "done": {"BOOL": False},
            "claimed_at": {"N": str(self._epoch())},
        }
        if self._put(item, "attribute_not_exists(pk)"):
            return True
        return self.bootstrap_owner(cluster) == instance_id  # a retry of the winner's own claim

    def bootstrap_owner(self, cluster: str) -> str | None:
        item = self._get(cluster, "bootstrap")
        return item["owner"]["S"] if item else None

    def mark_bootstrapped(self, cluster: str, instance_id: str) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": _pk(cluster), "sk": {"S": "bootstrap"}},
                UpdateExpression="SET done = :t",
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":t": {"BOOL": True}, ":me": {"S": instance_id}},
            )
        except ClientError as exc:
            raise translate(exc, "UpdateItem") from exc

    def release_bootstrap(self, cluster: str, instance_id: str) -> None:
        """Give up a claim whose init failed, so another manager can try."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"pk": _pk(cluster), "sk": {"S": "bootstrap"}},
                ConditionExpression="#o = :me AND done = :f",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": instance_id}, ":f": {"BOOL": False}},
            )
        except ClientError as exc:
            if code_of(exc) != _CONDITION_FAILED:
                raise translate(exc, "DeleteItem") from exc

    def is_bootstrapped(self, cluster: str) -> bool:
        item = self._get(cluster, "bootstrap")
        return bool(item and item.get("done", {}).get("BOOL"))

    # --- lease ------------------------------------------------------------------------------------
    def acquire_lease(self, cluster: str, holder: str, ttl_seconds: int) -> bool:
        if not holder:
            raise ValueError("a lease needs a holder")
        if ttl_seconds < 1:
            raise ValueError(f"a lease needs a positive ttl, got {ttl_seconds}")
        now = self._epoch()
        return self._put(
            {
                "pk": _pk(cluster),
                "sk": {"S": "lease"},
                "holder": {"S": holder},
                "expires_at": {"N": str(now + ttl_seconds)},
                "renewed_at": {"N": str(now)},
            },
            "attribute_not_exists(pk) OR expires_at <= :now OR holder = :me",
            {":now": {"N": str(now)}, ":me": {"S": holder}},
        )

    def lease_holder(self, cluster: str) -> str | None:
        item = self._get(cluster, "lease")
        if not item or int(item["expires_at"]["N"]) <= self._epoch():
            return None
        return str(item["holder"]["S"])

    def release_lease(self, cluster: str, holder: str) -> None:
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"pk": _pk(cluster), "sk": {"S": "lease"}},
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": holder}},
            )
        except ClientError as exc:
            if code_of(exc) != _CONDITION_FAILED:
                raise translate(exc, "DeleteItem") from exc

    # --- waiting removals -------------------------------------------------------------------------
    def add_removal(self, cluster: str, action: LifecycleAction, since: datetime) -> datetime:
        item = {
            "pk": _pk(cluster),
            "sk": {"S": f"removal#{action.instance_id}"},
            "action": {"S": action.model_dump_json()},
            "since": {"N": str(int(since.timestamp()))},
        }
        if self._put(item, "attribute_not_exists(pk)"):
            return since
        found = self._get(cluster, f"removal#{action.instance_id}")
        if found is None:  # removed in between: ours now
            self._put(item)
            return since
        return datetime.fromtimestamp(int(found["since"]["N"]), tz=UTC)

    def removals(self, cluster: str) -> Sequence[tuple[LifecycleAction, datetime]]:
        out: list[tuple[LifecycleAction, datetime]] = []
        for item in self._query(cluster, "removal#"):
            action = LifecycleAction.model_validate(json.loads(item["action"]["S"]))
            out.append((action, datetime.fromtimestamp(int(item["since"]["N"]), tz=UTC)))
        return out

    def remove_removal(self, cluster: str, instance_id: str) -> None:
        try:
            self._db.delete_item(
                TableName=self._table, Key={"pk": _pk(cluster), "sk": {"S": f"removal#{instance_id}"}}
            )
        except ClientError as exc:
            raise translate(exc, "DeleteItem") from exc

    def _query(self, cluster: str, prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            pages = self._db.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                ExpressionAttributeValues={":pk": _pk(cluster), ":p": {"S": prefix}},
                ConsistentRead=True,
            )
            for page in pages:
                out += [dict(i) for i in page.get("Items", [])]
        except ClientError as exc:
            raise translate(exc, "Query") from exc
        return out

    # --- pending joins ----------------------------------------------------------------------------
    def add_pending(self, cluster: str, action: LifecycleAction, role: Role) -> None:
        self._put(
            {
                "pk": _pk(cluster),
                "sk": {"S": f"pending#{action.instance_id}"},
                "action": {"S": action.model_dump_json()},
                "role": {"S": role.value},
                "since": {"N": str(self._epoch())},
            },
            "attribute_not_exists(pk)",
        )

    def pending(self, cluster: str) -> Sequence[tuple[LifecycleAction, Role]]:
        out: list[tuple[LifecycleAction, Role]] = []
        try:
            pages = self._db.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                ExpressionAttributeValues={":pk": _pk(cluster), ":p": {"S": "pending#"}},
                ConsistentRead=True,
            )
            for page in pages:
                for item in page.get("Items", []):
                    out.append(
                        (
                            LifecycleAction.model_validate(json.loads(item["action"]["S"])),
                            Role(item["role"]["S"]),
                        )
                    )
        except ClientError as exc:
            raise translate(exc, "Query") from exc
        return out

    def remove_pending(self, cluster: str, instance_id: str) -> None:
        try:
            self._db.delete_item(
                TableName=self._table, Key={"pk": _pk(cluster), "sk": {"S": f"pending#{instance_id}"}}
            )
        except ClientError as exc:
            raise translate(exc, "DeleteItem") from exc

    # --- the reconciler's memory ------------------------------------------------------------------
    def reconcile_record(self, cluster: str) -> ReconcileRecord | None:
        item = self._get(cluster, "reconcile")
        return ReconcileRecord.model_validate_json(item["record"]["S"]) if item else None

    def save_reconcile_record(self, cluster: str, record: ReconcileRecord) -> None:
        self._put(
            {
                "pk": _pk(cluster),
                "sk": {"S": "reconcile"},
                "record": {"S": record.model_dump_json()},
                "updated_at": {"N": str(self._epoch())},
            }
        )
