"""RotationService: the four Secrets Manager steps against a FakeVault and the SimSwarm."""

from __future__ import annotations

import pytest
from tests.fakes import FakeHandOff, FakeVault

from autojoin.adapters.sim.clock import SimClock
from autojoin.adapters.sim.swarm import SimSwarm
from autojoin.domain.model import Role
from autojoin.errors import BadInput
from autojoin.services.rotation import RotationFailed, RotationService, Step
from autojoin.settings import Settings

MGR_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:demo-manager-token-AbCdEf"
WRK_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:demo-worker-token-GhIjKl"
V2 = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def setup() -> tuple[RotationService, FakeVault, SimSwarm]:
    vault, handoff = FakeVault(), FakeHandOff()
    swarm = SimSwarm(
        SimClock(),
        take_ticket=handoff.take,
        store_token=vault.store,
        address_of=lambda i: "10.0.0.1",
        read_pending=vault.pending,
    )
    swarm.init("i-1", "10.0.0.1")
    settings = Settings(
        cluster="demo", state_table="t", manager_secret_arn=MGR_ARN, worker_secret_arn=WRK_ARN
    )
    return RotationService(settings, vault=vault, orchestrator=swarm), vault, swarm


def test_four_steps_rotate_the_worker_token(setup: tuple[RotationService, FakeVault, SimSwarm]) -> None:
    service, vault, swarm = setup
    old = vault.current[Role.WORKER]
    manager_token = vault.current[Role.MANAGER]
    assert service.handle(WRK_ARN, V2, "createSecret").action.startswith("rotated")
    assert swarm.valid_token(old) is None  # Swarm invalidates the old token at once
    pending = vault.pending(Role.WORKER, V2)
    assert pending is not None and swarm.valid_token(pending.get_secret_value()) is Role.WORKER
    assert service.handle(WRK_ARN, V2, "createSecret").action.startswith("pending token already")
    stored = dict(vault.versions)
    set_step = service.handle(WRK_ARN, V2, "setSecret")
    assert (set_step.step, set_step.action) == (
        Step.SET,
        "nothing to set: the swarm already uses the pending token",
    )
    assert vault.versions == stored and swarm.valid_token(pending.get_secret_value()) is Role.WORKER
    assert service.handle(WRK_ARN, V2, "testSecret").action == "the swarm accepts the pending token"
    finish = service.handle(WRK_ARN, V2, "finishSecret")
    assert (finish.step, finish.action) == (Step.FINISH, "AWSCURRENT moved to the new version")
    assert vault.current[Role.WORKER] == pending.get_secret_value() != old
    assert vault.stages(Role.WORKER, V2) == ("AWSCURRENT",)
    again = service.handle(WRK_ARN, V2, "finishSecret")
    assert again.action.startswith("version is already AWSCURRENT")
    assert vault.current[Role.MANAGER] == manager_token  # rotating the worker token leaves the manager's
    assert swarm.valid_token(manager_token) is Role.MANAGER


def test_test_step_fails_when_the_swarm_rejects_the_pending_token(
    setup: tuple[RotationService, FakeVault, SimSwarm],
) -> None:
    service, _vault, swarm = setup
    service.handle(MGR_ARN, V2, "createSecret")
    swarm.rotate_token(Role.MANAGER, "another-version-id-000000000000")  # someone rotated again by hand
    with pytest.raises(RotationFailed):
        service.handle(MGR_ARN, V2, "testSecret")


def test_unknown_secret_or_step_is_bad_input(setup: tuple[RotationService, FakeVault, SimSwarm]) -> None:
    service, _vault, _swarm = setup
    with pytest.raises(BadInput):
        service.handle("arn:aws:secretsmanager:us-east-1:123456789012:secret:other", V2, "createSecret")
    with pytest.raises(BadInput):
        service.handle(WRK_ARN, V2, "explodeSecret")
