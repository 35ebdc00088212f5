"""RotationService: the four Secrets Manager steps against a FakeVault, a FakeState and the SimSwarm."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from pydantic import SecretStr
from tests.fakes import FakeHandOff, FakeState, FakeVault

from autojoin.adapters.sim.clock import SimClock
from autojoin.adapters.sim.swarm import SimSwarm
from autojoin.domain.model import Role
from autojoin.errors import BadInput, LeaseHeld, Unreachable
from autojoin.services.rotation import RotationDecision, RotationService, Step
from autojoin.settings import Settings

MGR_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:demo-manager-token-AbCdEf"
WRK_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:demo-worker-token-GhIjKl"
V2 = "0123456789abcdef0123456789abcdef"
SETTINGS = Settings(cluster="demo", state_table="t", manager_secret_arn=MGR_ARN, worker_secret_arn=WRK_ARN)


@dataclass
class Setup:
    service: RotationService
    vault: FakeVault
    swarm: SimSwarm
    state: FakeState
    fail_stores: int = 0  # the next N pending stores fail after the swarm rotated (a lost put)
    lost: list[str] = field(default_factory=list)  # the tokens of those lost puts

    def store(self, role: Role, token: SecretStr, version_id: str | None) -> None:
        if version_id is not None and self.fail_stores:
            self.fail_stores -= 1
            self.lost.append(token.get_secret_value())
            raise Unreachable("the runner timed out after delivering the command")
        self.vault.store(role, token, version_id)


def make(*, cluster: bool = True) -> Setup:
    vault, handoff, state = FakeVault(), FakeHandOff(), FakeState()
    holder: list[Setup] = []
    swarm = SimSwarm(
        SimClock(),
        take_ticket=handoff.take,
        store_token=lambda r, t, v: holder[0].store(r, t, v),  # noqa: PLW0108 - holder is filled below
        address_of=lambda i: "10.0.0.1",
        read_pending=vault.pending,
    )
    setup = Setup(
        RotationService(SETTINGS, vault=vault, orchestrator=swarm, state=state), vault, swarm, state
    )
    holder.append(setup)
    if cluster:
        swarm.init("i-1", "10.0.0.1")
        assert state.claim_bootstrap("demo", "i-1")
        state.mark_bootstrapped("demo", "i-1")
    return setup


@pytest.fixture
def setup() -> Setup:
    return make()


def test_four_steps_rotate_the_worker_token(setup: Setup) -> None:
    service, vault, swarm = setup.service, setup.vault, setup.swarm
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
    assert setup.state.leases == {}  # the lease is released


def test_test_step_resyncs_the_secret_from_the_swarm_when_they_differ(setup: Setup) -> None:
    service, vault, swarm = setup.service, setup.vault, setup.swarm
    service.handle(MGR_ARN, V2, "createSecret")
    swarm.rotate_token(Role.MANAGER, "another-version-id-000000000000")  # a stray rotation since
    vault.versions.pop((Role.MANAGER, "another-version-id-000000000000"))  # ... whose put was lost
    stale = vault.pending(Role.MANAGER, V2)
    assert stale is not None and swarm.valid_token(stale.get_secret_value()) is None
    decision = service.handle(MGR_ARN, V2, "testSecret")
    assert decision == RotationDecision(
        Role.MANAGER,
        Step.TEST,
        "the swarm holds another token than the pending one: AWSCURRENT re-synced from the swarm, "
        "the stale pending version dropped",
    )
    assert swarm.valid_token(vault.current[Role.MANAGER]) is Role.MANAGER  # joins work again at once
    assert vault.pending(Role.MANAGER, V2) is None  # the stale version is no longer pending
    assert service.handle(MGR_ARN, V2, "finishSecret").action.startswith("no pending token")
    assert swarm.valid_token(vault.current[Role.MANAGER]) is Role.MANAGER


def test_an_ambiguous_failure_after_the_swarm_rotated_stores_what_the_swarm_holds(setup: Setup) -> None:
    service, vault, swarm = setup.service, setup.vault, setup.swarm
    old = vault.current[Role.WORKER]
    setup.fail_stores = 1  # the swarm rotates, the put is lost (runner timeout after delivery)
    service.handle(WRK_ARN, V2, "createSecret")
    pending = vault.pending(Role.WORKER, V2)
    assert pending is not None and swarm.valid_token(pending.get_secret_value()) is Role.WORKER
    assert swarm.valid_token(old) is None
    assert service.handle(WRK_ARN, V2, "testSecret").action == "the swarm accepts the pending token"


def test_rotations_are_serialised_by_the_cluster_lease(setup: Setup) -> None:
    old = setup.vault.current[Role.WORKER]
    assert setup.state.acquire_lease("demo", "guard:remove-node", 60)
    with pytest.raises(LeaseHeld):
        setup.service.handle(WRK_ARN, V2, "createSecret")
    assert setup.swarm.valid_token(old) is Role.WORKER  # nothing rotated
    assert setup.state.leases == {"demo": "guard:remove-node"}


def test_a_step_waits_for_the_lease_another_change_holds_then_rotates(setup: Setup) -> None:
    clock = SimClock()
    service = RotationService(
        SETTINGS, vault=setup.vault, orchestrator=setup.swarm, state=setup.state, clock=clock
    )
    old = setup.vault.current[Role.WORKER]
    start = clock.now()
    assert setup.state.acquire_lease("demo", "guard:remove-node", 60)
    clock.call_later(30, lambda: setup.state.release_lease("demo", "guard:remove-node"))

    decision = service.handle(WRK_ARN, V2, "createSecret")

    assert decision.action == "rotated in the cluster; stored as AWSPENDING"
    assert (clock.now() - start).total_seconds() == 30  # polled every 5 s until the guard let go
    assert setup.swarm.valid_token(old) is None
    assert setup.state.leases == {}


def test_a_step_gives_up_on_a_lease_held_longer_than_it_waits(setup: Setup) -> None:
    clock = SimClock()
    service = RotationService(
        SETTINGS, vault=setup.vault, orchestrator=setup.swarm, state=setup.state, clock=clock, lease_wait=61
    )
    old = setup.vault.current[Role.WORKER]
    start = clock.now()
    assert setup.state.acquire_lease("demo", "guard:remove-node", 600)
    with pytest.raises(LeaseHeld, match="guard:remove-node") as raised:
        service.handle(WRK_ARN, V2, "createSecret")
    assert (raised.value.cluster, raised.value.holder) == ("demo", "guard:remove-node")
    assert (clock.now() - start).total_seconds() == 65  # whole polls of 5 s until 61 s have passed
    assert setup.swarm.valid_token(old) is Role.WORKER  # nothing rotated


@pytest.mark.parametrize("bootstrapped", [False, True])
def test_every_step_succeeds_with_no_cluster_or_no_current_token(bootstrapped: bool) -> None:
    setup = make(cluster=False)
    if bootstrapped:  # a cluster record, but no token stored yet
        assert setup.state.claim_bootstrap("demo", "i-1")
        setup.state.mark_bootstrapped("demo", "i-1")
    why = "no current token yet" if bootstrapped else "no cluster yet"
    expected = {
        "createSecret": f"{why}: nothing to rotate or test",
        "setSecret": "nothing to set: the swarm already uses the pending token",
        "testSecret": f"{why}: nothing to rotate or test",
        "finishSecret": "no pending token to promote: nothing to do",
    }
    for step, action in expected.items():
        decision = setup.service.handle(WRK_ARN, V2, step)
        assert decision == RotationDecision(Role.WORKER, Step(step), action)
    assert setup.vault.current == {} and setup.vault.versions == {}


def test_test_secret_without_a_pending_version_says_so(setup: Setup) -> None:
    decision = setup.service.handle(WRK_ARN, V2, "testSecret")
    assert decision == RotationDecision(Role.WORKER, Step.TEST, "no pending token to test: nothing to do")


def test_unknown_secret_or_step_is_bad_input(setup: Setup) -> None:
    with pytest.raises(BadInput):
        setup.service.handle("arn:aws:secretsmanager:us-east-1:123456789012:secret:other", V2, "createSecret")
    with pytest.raises(BadInput):
        setup.service.handle(WRK_ARN, V2, "explodeSecret")
