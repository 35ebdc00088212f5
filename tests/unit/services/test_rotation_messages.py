"""RotationService: what each refusal and step says (operators read these in the logs and the failure
destination)."""

from __future__ import annotations

import pytest
from tests.fakes import FakeHandOff, FakeState, FakeVault

from autojoin.adapters.sim.clock import SimClock
from autojoin.adapters.sim.swarm import SimSwarm
from autojoin.errors import BadInput
from autojoin.services.rotation import RotationService, Step
from autojoin.settings import Settings

MGR_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:demo-manager-token-AbCdEf"
WRK_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:demo-worker-token-GhIjKl"
V2 = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def service() -> tuple[RotationService, SimSwarm]:
    vault, handoff, state = FakeVault(), FakeHandOff(), FakeState()
    swarm = SimSwarm(
        SimClock(),
        take_ticket=handoff.take,
        store_token=vault.store,
        address_of=lambda i: "10.0.0.1",
        read_pending=vault.pending,
    )
    swarm.init("i-1", "10.0.0.1")
    assert state.claim_bootstrap("demo", "i-1")
    state.mark_bootstrapped("demo", "i-1")
    settings = Settings(
        cluster="demo", state_table="t", manager_secret_arn=MGR_ARN, worker_secret_arn=WRK_ARN
    )
    return RotationService(settings, vault=vault, orchestrator=swarm, state=state), swarm


def test_refusals_say_what_was_wrong(service: tuple[RotationService, SimSwarm]) -> None:
    rotation, _swarm = service
    with pytest.raises(BadInput) as caught:
        rotation.handle("arn:aws:secretsmanager:us-east-1:123456789012:secret:other", V2, "createSecret")
    assert str(caught.value) == (
        "rotation asked for a secret that is not one of this cluster's token secrets"
    )
    with pytest.raises(BadInput) as caught:
        rotation.handle(WRK_ARN, V2, "explodeSecret")
    assert str(caught.value) == "unknown rotation step 'explodeSecret'"


def test_each_step_says_what_it_did(service: tuple[RotationService, SimSwarm]) -> None:
    rotation, _swarm = service
    said = [rotation.handle(WRK_ARN, V2, s.value).to_dict() for s in Step]
    assert said == [
        {"role": "worker", "step": "createSecret", "action": "rotated in the cluster; stored as AWSPENDING"},
        {
            "role": "worker",
            "step": "setSecret",
            "action": "nothing to set: the swarm already uses the pending token",
        },
        {"role": "worker", "step": "testSecret", "action": "the swarm accepts the pending token"},
        {"role": "worker", "step": "finishSecret", "action": "AWSCURRENT moved to the new version"},
    ]
    again = rotation.handle(WRK_ARN, V2, "createSecret")
    assert again.to_dict() == {
        "role": "worker",
        "step": "createSecret",
        "action": "version is already AWSCURRENT: nothing to do",
    }


def test_a_retried_create_step_says_the_pending_token_is_there(
    service: tuple[RotationService, SimSwarm],
) -> None:
    rotation, _swarm = service
    rotation.handle(MGR_ARN, V2, "createSecret")
    assert rotation.handle(MGR_ARN, V2, "createSecret").to_dict() == {
        "role": "manager",
        "step": "createSecret",
        "action": "pending token already stored: nothing to do",
    }
