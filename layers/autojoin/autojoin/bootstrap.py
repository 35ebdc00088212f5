"""Composition root: the only place adapters are wired. Everything is built lazily on first use, never at
import time, so that moto (or the local cloud) is active before any boto3 client exists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3

from autojoin.domain.model import Role
from autojoin.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from autojoin.adapters.aws.fleet import AsgFleet
    from autojoin.adapters.aws.handoff import DynamoHandOff
    from autojoin.adapters.aws.state import DynamoStateStore
    from autojoin.adapters.aws.tokens import SecretsManagerTokenVault
    from autojoin.ports import Clock, CommandRunner, Orchestrator
    from autojoin.services.launch import LaunchService
    from autojoin.services.reconcile import ReconcileService
    from autojoin.services.removal import RemovalService
    from autojoin.services.rotation import RotationService
    from autojoin.services.termination_policy import TerminationPolicyService


@dataclass
class Deps:
    """Lazily built dependencies of one function (one warm Lambda instance keeps one)."""

    settings: Settings
    session: boto3.Session = field(default_factory=boto3.Session)
    clock_override: Clock | None = None
    orchestrator_override: Orchestrator | None = None
    runner_override: CommandRunner | None = None  # the real SwarmOrchestrator over another runner (lab)

    def client(self, service: str) -> Any:
        """One boto3 client per service for the life of the warm function."""
        if service not in self._clients:
            make: Any = self.session.client
            self._clients[service] = make(service, region_name=self.settings.region)
        return self._clients[service]

    @cached_property
    def _clients(self) -> dict[str, Any]:
        return {}

    @cached_property
    def clock(self) -> Clock:
        if self.clock_override is not None:
            return self.clock_override
        from autojoin.clock import SystemClock

        return SystemClock()

    @cached_property
    def fleet(self) -> AsgFleet:
        from autojoin.adapters.aws.fleet import AsgFleet

        return AsgFleet(self.client("autoscaling"), self.client("ec2"))

    @cached_property
    def vault(self) -> SecretsManagerTokenVault:
        from autojoin.adapters.aws.tokens import SecretsManagerTokenVault

        secrets = {
            role: arn
            for role, arn in (
                (Role.MANAGER, self.settings.manager_secret_arn),
                (Role.WORKER, self.settings.worker_secret_arn),
            )
            if arn
        }
        return SecretsManagerTokenVault(
            self.client("secretsmanager"), secrets, max_age=self.settings.token_max_age
        )

    @cached_property
    def state(self) -> DynamoStateStore:
        from autojoin.adapters.aws.state import DynamoStateStore

        return DynamoStateStore(self.client("dynamodb"), self.settings.state_table, self.clock.now)

    @cached_property
    def handoff(self) -> DynamoHandOff:
        from autojoin.adapters.aws.handoff import DynamoHandOff

        return DynamoHandOff(
            self.client("dynamodb"),
            self.settings.handoff_table,
            self.settings.instance_role_ids(),
            self.clock.now,
        )

    @cached_property
    def orchestrator(self) -> Orchestrator:
        if self.orchestrator_override is not None:
            return self.orchestrator_override
        from autojoin.adapters.swarm.orchestrator import SwarmOrchestrator

        return SwarmOrchestrator(self.runner, self.manager_instances, join_timeout=self.settings.join_timeout)

    @cached_property
    def runner(self) -> CommandRunner:
        if self.runner_override is not None:
            return self.runner_override
        from autojoin.adapters.aws.ssm_runner import SsmCommandRunner

        return SsmCommandRunner(self.client("ssm"))

    def manager_instances(self) -> list[str]:
        """Instances to reach the cluster through, best first: the last known leader, the other known
        managers, the bootstrap owner, then the manager group's live instances (InService first; a first
        manager is still in Pending:Wait while it initialises). The orchestrator skips any that is not
        (or no longer) a reachable manager."""
        cluster = self.settings.cluster
        snapshot = self.state.snapshot(cluster)
        known = [n for n in snapshot.managers() if n.healthy] if snapshot else []
        ordered = [n.instance_id for n in sorted(known, key=lambda n: not n.leader)]
        owner = self.state.bootstrap_owner(cluster)
        live: list[tuple[bool, str]] = []
        for group in self.fleet.cluster_groups(cluster):
            if group.role is Role.MANAGER:
                live += [
                    (i.lifecycle_state != "InService", i.instance_id)
                    for i in self.fleet.instances(group.name)
                    if not i.gone and not (i.lifecycle_state or "").startswith("Terminat")
                ]
        for iid in [*([owner] if owner else []), *(iid for _, iid in sorted(live))]:
            if iid not in ordered:
                ordered.append(iid)
        return ordered

    @cached_property
    def idempotency(self) -> DynamoDBPersistenceLayer:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        return DynamoDBPersistenceLayer(
            table_name=self.settings.state_table,
            key_attr="pk",
            sort_key_attr="sk",
            static_pk_value=f"idempotency#{self.settings.cluster}",
            expiry_attr="expires_at",
            boto3_client=self.client("dynamodb"),
        )

    @cached_property
    def launch(self) -> LaunchService:
        from autojoin.services.launch import LaunchConfig, LaunchService

        config = LaunchConfig(
            cluster=self.settings.cluster,
            handoff_ttl=self.settings.handoff_ttl,
            join_wait=self.settings.join_wait,
            join_timeout=self.settings.join_timeout,
            min_managers=self.settings.min_managers,
        )
        return LaunchService(
            config,
            fleet=self.fleet,
            vault=self.vault,
            handoff=self.handoff,
            orchestrator=self.orchestrator,
            state=self.state,
            clock=self.clock,
        )

    @cached_property
    def reconcile(self) -> ReconcileService:
        from autojoin.services.reconcile import LEASE_HOLDER, ReconcileConfig, ReconcileService

        config = ReconcileConfig(
            cluster=self.settings.cluster,
            dry_run=self.settings.dry_run,
            recover_after=self.settings.recover_after,
            launch_hook=self.settings.launch_hook,
            min_managers=self.settings.min_managers,
        )
        return ReconcileService(
            config,
            fleet=self.fleet,
            orchestrator=self.orchestrator,
            state=self.state,
            clock=self.clock,
            launch=self.launch,
            remove_dead=lambda members: self.removal.remove_dead_nodes(LEASE_HOLDER, members),
        )

    @cached_property
    def termination_policy(self) -> TerminationPolicyService:
        from autojoin.services.termination_policy import PolicyConfig, TerminationPolicyService

        s = self.settings
        config = PolicyConfig(
            cluster=s.cluster,
            manager_group=s.manager_group,
            worker_group=s.worker_group,
            min_managers=s.min_managers,
            snapshot_max_age=s.snapshot_max_age,
        )
        return TerminationPolicyService(config, state=self.state, now=self.clock.now)

    @cached_property
    def removal(self) -> RemovalService:
        from autojoin.services.removal import RemovalConfig, RemovalService

        s = self.settings
        config = RemovalConfig(
            cluster=s.cluster,
            manager_group=s.manager_group,
            worker_group=s.worker_group,
            terminate_hook=s.terminate_hook,
            min_managers=s.min_managers,
            lease_ttl=s.lease_ttl,
            removal_wait=s.removal_wait,
            drain_timeout=s.drain_timeout,
        )
        return RemovalService(
            config, fleet=self.fleet, orchestrator=self.orchestrator, state=self.state, clock=self.clock
        )

    @cached_property
    def rotation(self) -> RotationService:
        from autojoin.services.rotation import RotationService

        return RotationService(
            self.settings,
            vault=self.vault,
            orchestrator=self.orchestrator,
            state=self.state,
            clock=self.clock,
        )


def build_deps(
    settings: Settings,
    *,
    orchestrator: Orchestrator | None = None,
    clock: Clock | None = None,
    session: boto3.Session | None = None,
    runner: CommandRunner | None = None,
) -> Deps:
    return Deps(
        settings=settings,
        session=session or boto3.Session(),
        clock_override=clock,
        orchestrator_override=orchestrator,
        runner_override=runner,
    )


_PROCESS_DEPS: dict[str, Deps] = {}


def production_deps(env: Mapping[str, str] | None = None) -> Deps:
    """The warm function's deps, built on first call from its environment."""
    if "default" not in _PROCESS_DEPS:
        _PROCESS_DEPS["default"] = build_deps(Settings.from_env(os.environ if env is None else env))
    return _PROCESS_DEPS["default"]
