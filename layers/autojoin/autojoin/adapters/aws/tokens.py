"""SecretsManagerTokenVault: one Secrets Manager secret per role; SecretString is the bare token.

Reads go through Powertools' SecretsProvider, whose cache (``max_age``) lets a warm function serve a
burst of launches with one GetSecretValue per role. Values leave this module only as SecretStr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError
from pydantic import SecretStr

from autojoin.adapters.aws.errors import code_of, translate
from autojoin.domain.model import Role
from autojoin.errors import SecretMissing
from autojoin.ports import TokenVault

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_secretsmanager import SecretsManagerClient

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"


class SecretsManagerTokenVault(TokenVault):
    def __init__(
        self, client: SecretsManagerClient, secrets: Mapping[Role, str], *, max_age: int = 300
    ) -> None:
        self._client = client
        self._secrets = dict(secrets)
        self._max_age = max_age
        self._provider = SecretsProvider(boto3_client=client)

    def _id(self, role: Role) -> str:
        secret_id = self._secrets.get(role)
        if not secret_id:
            raise SecretMissing(f"no secret configured for role {role.value}")
        return secret_id

    def token(self, role: Role, *, refresh: bool = False) -> SecretStr:
        secret_id = self._id(role)
        if refresh:
            # A rotation may be half-way (createSecret done, finishSecret not yet): the swarm then only
            # accepts the AWSPENDING value, so a refresh prefers a pending version over the current one.
            pending = self._pending_version(secret_id)
            if pending is not None:
                value = self._value(secret_id, version_id=pending)
                if value is not None:
                    return value
        try:
            # VersionStage explicit: moto (5.2) keeps serving the old default version after a stage move.
            raw = self._provider.get(
                secret_id, max_age=self._max_age, force_fetch=refresh, VersionStage=CURRENT
            )
        except GetParameterError:
            raise SecretMissing(f"secret for role {role.value} has no current value") from None
        if not isinstance(raw, str) or not raw:
            raise SecretMissing(f"secret for role {role.value} has no current value")
        return SecretStr(raw)

    def has_token(self, role: Role) -> bool:
        try:
            described = self._client.describe_secret(SecretId=self._id(role))
        except ClientError as exc:
            if code_of(exc) == "ResourceNotFoundException":
                return False
            raise translate(exc, "DescribeSecret") from exc
        return any(CURRENT in stages for stages in described.get("VersionIdsToStages", {}).values())

    def current_token(self, role: Role) -> SecretStr | None:
        secret_id = self._id(role)
        try:
            raw = self._client.get_secret_value(SecretId=secret_id, VersionStage=CURRENT)
        except ClientError as exc:
            if code_of(exc) in {"ResourceNotFoundException", "InvalidRequestException"}:
                return None  # created empty: no version yet
            raise translate(exc, "GetSecretValue") from exc
        value = raw.get("SecretString")
        return SecretStr(value) if value else None

    def stages(self, role: Role, version_id: str) -> tuple[str, ...]:
        try:
            described = self._client.describe_secret(SecretId=self._id(role))
        except ClientError as exc:
            raise translate(exc, "DescribeSecret") from exc
        return tuple(described.get("VersionIdsToStages", {}).get(version_id, ()))

    def pending(self, role: Role, version_id: str) -> SecretStr | None:
        return self._value(self._id(role), version_id=version_id, stage=PENDING)

    def promote_pending(self, role: Role, version_id: str) -> None:
        secret_id = self._id(role)
        try:
            described = self._client.describe_secret(SecretId=secret_id)
            current = next(
                (v for v, stages in described.get("VersionIdsToStages", {}).items() if CURRENT in stages),
                None,
            )
            if current != version_id:
                params = {"SecretId": secret_id, "VersionStage": CURRENT, "MoveToVersionId": version_id}
                if current:
                    params["RemoveFromVersionId"] = current
                self._client.update_secret_version_stage(**params)
        except ClientError as exc:
            raise translate(exc, "UpdateSecretVersionStage") from exc
        # AWSPENDING comes off too: otherwise an "AWSPENDING" read keeps answering with the current token
        self.drop_pending(role, version_id)

    def drop_pending(self, role: Role, version_id: str) -> None:
        secret_id = self._id(role)
        try:
            described = self._client.describe_secret(SecretId=secret_id)
            if PENDING not in described.get("VersionIdsToStages", {}).get(version_id, ()):
                return
            self._client.update_secret_version_stage(
                SecretId=secret_id, VersionStage=PENDING, RemoveFromVersionId=version_id
            )
        except ClientError as exc:
            raise translate(exc, "UpdateSecretVersionStage") from exc

    def _pending_version(self, secret_id: str) -> str | None:
        try:
            described = self._client.describe_secret(SecretId=secret_id)
        except ClientError as exc:
            raise translate(exc, "DescribeSecret") from exc
        for version, stages in described.get("VersionIdsToStages", {}).items():
            if PENDING in stages and CURRENT not in stages:
                return version
        return None

    def _value(self, secret_id: str, *, version_id: str, stage: str | None = None) -> SecretStr | None:
        params = {"SecretId": secret_id, "VersionId": version_id}
        if stage:
            params["VersionStage"] = stage
        try:
            raw = self._client.get_secret_value(**params)
        except ClientError as exc:
            if code_of(exc) in {"ResourceNotFoundException", "InvalidRequestException"}:
                return None
            raise translate(exc, "GetSecretValue") from exc
        value = raw.get("SecretString")
        return SecretStr(value) if value else None
