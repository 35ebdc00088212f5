"""rotate_tokens: Secrets Manager's four rotation steps for one role's join token.

Swarm rotates atomically (``docker swarm join-token --rotate`` invalidates the old token at once), so the
work happens in ``createSecret``: a manager node rotates and stores the new token itself as AWSPENDING
under the step's ClientRequestToken — the token never passes through this function. ``setSecret`` has
nothing left to do, ``testSecret`` asks a manager whether the pending value is what the swarm accepts,
and ``finishSecret`` moves AWSCURRENT. Joins that meet the window between createSecret and finishSecret
refresh their token (a refresh prefers a pending version) and retry once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from autojoin.domain.model import Role
from autojoin.errors import AutojoinError, BadInput
from autojoin.ports import Orchestrator, TokenVault
from autojoin.settings import Settings


class Step(StrEnum):
    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"


class RotationFailed(AutojoinError):
    """testSecret found that the swarm does not accept the pending token."""


@dataclass(frozen=True)
class RotationDecision:
    role: Role
    step: Step
    action: str  # what was done, in words

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role.value, "step": self.step.value, "action": self.action}


class RotationService:
    def __init__(self, settings: Settings, *, vault: TokenVault, orchestrator: Orchestrator) -> None:
        self.settings = settings
        self.vault = vault
        self.orchestrator = orchestrator

    def handle(self, secret_id: str, version_id: str, step: str) -> RotationDecision:
        role = self.settings.role_of_secret(secret_id)
        if role is None:
            raise BadInput("rotation asked for a secret that is not one of this cluster's token secrets")
        try:
            the_step = Step(step)
        except ValueError:
            raise BadInput(f"unknown rotation step {step!r}") from None
        if "AWSCURRENT" in self.vault.stages(role, version_id):
            return RotationDecision(role, the_step, "version is already AWSCURRENT: nothing to do")
        if the_step is Step.CREATE:
            if self.vault.pending(role, version_id) is not None:
                return RotationDecision(role, the_step, "pending token already stored: nothing to do")
            self.orchestrator.rotate_token(role, version_id)
            return RotationDecision(role, the_step, "rotated in the cluster; stored as AWSPENDING")
        if the_step is Step.SET:
            return RotationDecision(
                role, the_step, "nothing to set: the swarm already uses the pending token"
            )
        if the_step is Step.TEST:
            if not self.orchestrator.token_works(role, version_id):
                raise RotationFailed(f"the swarm does not accept the pending {role.value} token")
            return RotationDecision(role, the_step, "the swarm accepts the pending token")
        self.vault.promote_pending(role, version_id)
        return RotationDecision(role, the_step, "AWSCURRENT moved to the new version")
