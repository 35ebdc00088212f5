"""Settings: the function's environment parsed once into a typed model (names and ARNs, never secrets)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autojoin.domain.model import Role
from autojoin.errors import BadInput

PREFIX = "AUTOJOIN_"


class Settings(BaseModel):
    """Everything a handler needs to build its adapters. Field ``x`` comes from env ``AUTOJOIN_X``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    cluster: str = Field(min_length=1)
    state_table: str = Field(min_length=1)
    handoff_table: str = ""
    manager_secret_arn: str = ""
    worker_secret_arn: str = ""
    manager_instance_role_id: str = ""
    worker_instance_role_id: str = ""
    token_max_age: int = Field(default=300, ge=0)  # seconds a warm function reuses a token
    handoff_ttl: int = Field(default=900, ge=60)  # seconds an unclaimed ticket lives
    join_wait: float = Field(default=60.0, ge=0)  # seconds to wait for the node to show Ready
    join_timeout: float = Field(default=120.0, gt=0)  # seconds one `autojoin-node join/init` may take
    idempotency_ttl: int = Field(default=7200, ge=60)
    # the reconciler (services/reconcile.py)
    dry_run: bool = False  # decide and report, change nothing
    recover_after: float = Field(default=900.0, ge=0)  # s an impaired AZ must look good (hysteresis)
    region: str | None = None
    # the quorum guard (termination policy, on_terminate, the guard's schedule)
    manager_group: str = ""  # the groups' names: the termination policy makes no AWS call to learn them
    worker_group: str = ""
    launch_hook: str = "autojoin-launch"  # only actions of these hooks are ever completed by autojoin
    terminate_hook: str = "autojoin-terminate"
    min_managers: int = Field(default=3, ge=1)
    snapshot_max_age: float = Field(default=300.0, gt=0)  # seconds; older snapshots are stale
    lease_ttl: int = Field(default=300, ge=10)
    removal_wait: float = Field(default=2700.0, ge=0)  # seconds a manager removal waits, then ABANDON
    drain_timeout: float = Field(default=300.0, ge=0)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        values = {k[len(PREFIX) :].lower(): v for k, v in env.items() if k.startswith(PREFIX)}
        if "region" not in values and env.get("AWS_REGION"):
            values["region"] = env["AWS_REGION"]
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            missing = ", ".join(PREFIX + ".".join(map(str, e["loc"])).upper() for e in exc.errors())
            raise BadInput(f"bad or missing settings: {missing}") from None

    def secret_for(self, role: Role) -> str:
        arn = self.manager_secret_arn if role is Role.MANAGER else self.worker_secret_arn
        if not arn:
            raise BadInput(f"no secret configured for role {role.value} (AUTOJOIN_{role.name}_SECRET_ARN)")
        return arn

    def role_of_secret(self, secret_id: str) -> Role | None:
        for role in Role:
            arn = self.manager_secret_arn if role is Role.MANAGER else self.worker_secret_arn
            if arn and secret_id == arn:  # rotation events name the secret by its full ARN
                return role
        return None

    def instance_role_ids(self) -> dict[Role, str]:
        return {Role.MANAGER: self.manager_instance_role_id, Role.WORKER: self.worker_instance_role_id}
