"""rotate_tokens: Secrets Manager's four rotation steps for one role's join token.

Swarm rotates atomically (a rotation invalidates the old token at once), so the work happens in
``createSecret``: a manager node rotates and stores the new token itself as AWSPENDING under the step's
ClientRequestToken — the token never passes through this function. ``setSecret`` has nothing left to do,
``testSecret`` asks a manager whether the pending value is what the swarm accepts, and ``finishSecret``
moves AWSCURRENT (and takes AWSPENDING off). Joins that meet the window between createSecret and
finishSecret refresh their token (a refresh prefers a pending version) and retry.

Rules (docs/token-delivery.md, "Rotation that cannot strand joins"):
- The swarm is the source of truth. Rotations are serialised by the cluster lease (a step waits up to
  LEASE_WAIT for another change to release it, then fails with LeaseHeld). A rotate is never
  re-run blind: the node first reads what the swarm holds and, if the swarm no longer accepts AWSCURRENT
  (an earlier attempt rotated), stores that instead of rotating again.
- testSecret repairs a mismatch (the swarm holds another token than AWSPENDING): the node stores the
  swarm's token as a fresh version, which becomes AWSCURRENT, and the stale pending version is dropped,
  so joins work again at once and no later rotation is stuck behind it.
- With no cluster yet, or no current token yet (the stack was just created), every step succeeds and
  does nothing: Secrets Manager runs testSecret when the rotation schedule is created.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from autojoin.domain.model import Role
from autojoin.errors import BadInput, LeaseHeld, OrchestratorError, TransientAwsError
from autojoin.ports import Clock, Orchestrator, StateStore, TokenVault
from autojoin.settings import Settings

LEASE_TTL = 330  # seconds: longer than the rotation function's timeout (template.yaml, 300 s)
# A step that finds the lease held (the guard removing a manager, the reconciler moving one) waits this long
# for it, polling, before it fails with LeaseHeld: well inside the function's 300 s, and longer than one
# graceful removal step holds it (found by a chaos run: a rotation during a scale-in from 7 managers to 3).
LEASE_WAIT = 120.0
LEASE_POLL = 5.0


class Step(StrEnum):
    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"


@dataclass(frozen=True)
class RotationDecision:
    role: Role
    step: Step
    action: str  # what was done, in words

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role.value, "step": self.step.value, "action": self.action}


class RotationService:
    def __init__(
        self,
        settings: Settings,
        *,
        vault: TokenVault,
        orchestrator: Orchestrator,
        state: StateStore,
        lease_ttl: int = LEASE_TTL,
        clock: Clock | None = None,
        lease_wait: float = LEASE_WAIT,
    ) -> None:
        self.settings = settings
        self.vault = vault
        self.orchestrator = orchestrator
        self.state = state
        self.lease_ttl = lease_ttl
        self.clock = clock  # None: no waiting for the lease (fail at once)
        self.lease_wait = lease_wait

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
        if the_step is Step.SET:
            return RotationDecision(
                role, the_step, "nothing to set: the swarm already uses the pending token"
            )
        pending = self.vault.pending(role, version_id) is not None
        if the_step is Step.FINISH:
            if not pending:
                return RotationDecision(role, the_step, "no pending token to promote: nothing to do")
            self.vault.promote_pending(role, version_id)
            return RotationDecision(role, the_step, "AWSCURRENT moved to the new version")
        if the_step is Step.CREATE and pending:
            return RotationDecision(role, the_step, "pending token already stored: nothing to do")
        if not self.state.is_bootstrapped(self.settings.cluster):
            return RotationDecision(role, the_step, "no cluster yet: nothing to rotate or test")
        current = self.vault.current_token(role)
        if current is None:
            return RotationDecision(role, the_step, "no current token yet: nothing to rotate or test")
        if the_step is Step.CREATE:
            with self._lease(role, version_id):
                try:
                    self.orchestrator.rotate_token(role, version_id, current)
                except (OrchestratorError, TransientAwsError):
                    # Ambiguous: the rotation may or may not have happened. Ask again: the node reads the
                    # swarm first and stores what it holds rather than rotating a second time.
                    self.orchestrator.rotate_token(role, version_id, current)
            return RotationDecision(role, the_step, "rotated in the cluster; stored as AWSPENDING")
        if not pending:
            return RotationDecision(role, the_step, "no pending token to test: nothing to do")
        if self.orchestrator.token_works(role, version_id):
            return RotationDecision(role, the_step, "the swarm accepts the pending token")
        with self._lease(role, version_id):
            # A fresh version takes what the swarm holds (Secrets Manager never changes a version's value)
            # and becomes AWSCURRENT at once: joins work again before this rotation even finishes.
            synced = str(uuid.uuid4())
            self.orchestrator.sync_token(role, synced)
            self.vault.promote_pending(role, synced)
            self.vault.drop_pending(role, version_id)
        return RotationDecision(
            role,
            the_step,
            "the swarm holds another token than the pending one: AWSCURRENT re-synced from the swarm, "
            "the stale pending version dropped",
        )

    def _lease(self, role: Role, version_id: str) -> _Lease:
        return _Lease(
            self.state,
            self.settings.cluster,
            f"rotation:{role.value}:{version_id}",
            self.lease_ttl,
            self.clock,
            self.lease_wait,
        )


class _Lease:
    """The cluster lease for one rotation step (a context manager). Held by another change: polled every
    LEASE_POLL seconds for up to ``wait`` seconds, then LeaseHeld."""

    def __init__(  # noqa: PLR0917 - one lease, every part of it
        self, state: StateStore, cluster: str, holder: str, ttl: int, clock: Clock | None, wait: float
    ) -> None:
        self.state, self.cluster, self.holder, self.ttl = state, cluster, holder, ttl
        self.clock, self.wait = clock, wait

    def __enter__(self) -> None:
        waited = 0.0
        while not self.state.acquire_lease(self.cluster, self.holder, self.ttl):
            if self.clock is None or waited >= self.wait:
                raise LeaseHeld(self.cluster, self.state.lease_holder(self.cluster) or "another change")
            self.clock.sleep(LEASE_POLL)
            waited += LEASE_POLL

    def __exit__(self, *_: object) -> None:
        self.state.release_lease(self.cluster, self.holder)
