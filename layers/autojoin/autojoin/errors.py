"""The project's own errors. Adapters translate vendor errors into these; nothing branches on message text.

No message built here may contain a join token: the constructors take only non-secret facts.
"""

from __future__ import annotations


class AutojoinError(Exception):
    """Base of every error autojoin raises on purpose."""


class BadInput(AutojoinError):
    """The caller gave something autojoin cannot use (malformed event, unparsable layout...)."""


class PlacementError(AutojoinError):
    """No layout satisfies the request (capacity, impaired zones, impossible target)."""


# --- AWS side -------------------------------------------------------------------------------------


class TransientAwsError(AutojoinError):
    """Throttling, contention or a 5xx: retry (Lambda's async retry / failure destination)."""


class NotFound(AutojoinError):
    """A group, instance, secret or item autojoin expected does not exist."""


class LifecycleActionGone(AutojoinError):
    """'No active Lifecycle Action found': the action already finished (treat as done)."""


class SecretMissing(NotFound):
    """The role's token secret does not exist or has no current value."""


class LeaseHeld(AutojoinError):
    """Another change holds the cluster lease; try later."""

    def __init__(self, cluster: str, holder: str) -> None:
        super().__init__(f"cluster {cluster} lease is held by {holder}")
        self.cluster = cluster
        self.holder = holder


class LeaseLost(AutojoinError):
    """The cluster lease this change held expired and was taken (or could not be renewed): stop acting."""

    def __init__(self, cluster: str, holder: str) -> None:
        super().__init__(f"cluster {cluster}: {holder} no longer holds the lease")
        self.cluster = cluster
        self.holder = holder


# --- orchestrator side ----------------------------------------------------------------------------


class OrchestratorError(AutojoinError):
    """The orchestrator refused or could not be reached."""


class NoLeader(OrchestratorError):
    """The swarm has no leader (quorum lost): nothing can change."""


class Unreachable(OrchestratorError):
    """No command could reach the node (SSM undeliverable, socket dead, timeout)."""


class NodeNotReady(Unreachable):
    """The node itself cannot run commands yet (still booting, SSM agent not registered)."""


class JoinDeferred(AutojoinError):
    """The launch cannot proceed yet but may soon: the hook is kept alive and the invocation fails on
    purpose so that Lambda's asynchronous retries try again (the reconciler finishes what they don't)."""


class NoTicket(OrchestratorError):
    """The node found no join ticket of its own (never offered, expired, or already taken)."""


class NotAManager(OrchestratorError):
    """The node asked to act on the swarm is not a manager."""


class MustDemoteFirst(OrchestratorError):
    """A manager must be demoted before it can be removed."""


class DemotionWouldLoseQuorum(OrchestratorError):
    """The swarm refused a demotion because the remaining managers would lose quorum (Raft's safeguard)."""


class LastManager(OrchestratorError):
    """The last manager cannot be demoted or removed."""


class NodeNotDown(OrchestratorError):
    """`node rm` of a node that is not Down yet (it just left; retry after ~10 s)."""


class AlreadyInSwarm(OrchestratorError):
    """The node is already part of a swarm."""


class InvalidJoinToken(OrchestratorError):
    """The join token was refused (rotated or wrong)."""


class NodeNotFound(OrchestratorError):
    """The orchestrator has no such node."""


class CommandFailed(OrchestratorError):
    """A command ran and failed in a way none of the specific errors describes."""

    def __init__(self, what: str, exit_code: int | None = None) -> None:
        super().__init__(f"{what} failed (exit {exit_code})")
        self.exit_code = exit_code
