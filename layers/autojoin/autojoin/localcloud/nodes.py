"""The node side of the local cloud: the SimSwarm (or a given orchestrator) and what an instance does
through AWS as its own role would (take its join ticket, store and read tokens), and Secrets Manager
rotation through the template's rotation function."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import SecretStr

from autojoin.adapters.sim.swarm import SimSwarm
from autojoin.domain.model import Role
from autojoin.localcloud.base import CloudBase
from autojoin.localcloud.errors import LocalCloudError
from autojoin.node.agent import pending_token, store_token, take_ticket
from autojoin.ports import JoinTicket


class NodeSide(CloudBase):
    """LocalCloud's instances and orchestrator."""

    @property
    def orchestrator(self) -> Any:
        if isinstance(self._orchestrator_arg, str):
            if self._orchestrator_arg != "sim":
                raise LocalCloudError(
                    f'unknown orchestrator {self._orchestrator_arg!r} ("sim" or an Orchestrator)'
                )
            return self.swarm
        return self._orchestrator_arg

    @property
    def swarm(self) -> Any:
        """The in-memory SimSwarm (orchestrator="sim"); its nodes reach AWS as their instance would."""
        if not (isinstance(self._orchestrator_arg, str) and self._orchestrator_arg == "sim"):
            raise LocalCloudError('cloud.swarm exists only with orchestrator="sim"')
        if self._swarm is None:
            self._swarm = SimSwarm(
                self.clock,
                take_ticket=self._node_take_ticket,
                store_token=self._node_store_token,
                address_of=self._address_of,
                read_pending=self._node_read_pending,
                seed=self.seed,
            )
        return self._swarm

    def _on_instance(self, what: str, instance_id: str) -> None:
        if self._swarm is not None and what in {"crashed", "terminated"}:
            self._swarm.crash(instance_id)

    def _address_of(self, instance_id: str) -> str:
        return str(self.engine.ec2.get_instance(instance_id).private_ip)

    def _role_of(self, instance_id: str) -> Role | None:
        t = self.engine.tracked.get(instance_id)
        if t is None:
            return None
        tags = {x["Key"]: x["Value"] for x in self.engine.group(t.group).tags}
        role = tags.get("autojoin:role")
        return Role(role) if role in {r.value for r in Role} else None

    def _physical(self, lid: str, attr: str) -> str:
        value = self.stack.physical.get(lid, {}).get(attr)
        if not isinstance(value, str):
            raise LocalCloudError(f"the template has no {lid}.{attr} (docs/wiring.md)")
        return value

    def _node_take_ticket(self, instance_id: str) -> Any:

        role = self._role_of(instance_id)
        if role is None:
            return None
        role_id = self._physical(
            "ManagerInstanceRole" if role is Role.MANAGER else "WorkerInstanceRole", "RoleId"
        )
        with self._as(f"node:{instance_id}"):
            raw = take_ticket(
                self.session.client("dynamodb"),
                self._physical("HandoffTable", "Ref"),
                f"{role_id}:{instance_id}",
                now=self.clock.now().timestamp(),
            )
        if raw is None:
            return None
        return JoinTicket(
            role=Role(raw["role"]),
            token=SecretStr(raw["token"]),
            manager_addresses=tuple(raw["managers"]),
            cluster=raw["cluster"],
        )

    def _secret_arn(self, role: Role) -> str:
        return self._physical("ManagerTokenSecret" if role is Role.MANAGER else "WorkerTokenSecret", "Ref")

    def _node_store_token(self, role: Role, token: Any, version_id: str | None) -> None:

        with self._as("node"):
            store_token(
                self.session.client("secretsmanager"),
                self._secret_arn(role),
                token.get_secret_value(),
                version_id,
            )

    def _node_read_pending(self, role: Role, version_id: str) -> Any:

        with self._as("node"):
            value = pending_token(self.session.client("secretsmanager"), self._secret_arn(role), version_id)
        return SecretStr(value) if value is not None else None

    def rotate_secret(self, secret: str) -> str:
        """What Secrets Manager rotation does: the four steps, each a synchronous invoke of the template's
        rotation function for ``secret`` (logical id or ARN). Returns the new version id."""
        arn = self.stack.physical.get(secret, {}).get("Ref", secret)
        target = self.stack.rotations.get(str(arn))
        fn = self.stack.function_for_arn(target) if target else None
        if fn is None:
            raise LocalCloudError(f"no rotation schedule for {secret} in the template")
        version = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
            self.invoke(fn, {"SecretId": arn, "ClientRequestToken": version, "Step": step})
        return version
