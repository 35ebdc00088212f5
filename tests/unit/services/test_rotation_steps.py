"""RotationService: what a step hands the swarm and holds the lease as, and what a re-sync creates — the
survivors of the mutation sweep of services/rotation.py (issue 15)."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr
from tests.fakes import FakeState
from tests.unit.services.test_rotation import MGR_ARN, SETTINGS, V2, WRK_ARN, Setup, make

from autojoin.adapters.sim.clock import SimClock
from autojoin.domain.model import Role
from autojoin.errors import LeaseHeld, Unreachable
from autojoin.services.rotation import RotationService


@pytest.fixture
def setup() -> Setup:
    return make()


def test_a_create_step_retried_after_its_put_was_lost_stores_the_first_rotations_token(setup: Setup) -> None:
    """The swarm rotated, the put was lost twice (the step's own retry too): the invocation fails. Secrets
    Manager retries createSecret: the swarm no longer accepts AWSCURRENT, so what it holds is stored —
    the token of that first rotation — and it is not rotated a second time."""
    service, vault, swarm = setup.service, setup.vault, setup.swarm
    setup.fail_stores = 2
    with pytest.raises(Unreachable):
        service.handle(WRK_ARN, V2, "createSecret")
    first, again = setup.lost
    assert first == again and swarm.valid_token(first) is Role.WORKER  # the retry stored, not rotated
    assert (
        service.handle(WRK_ARN, V2, "createSecret").action == "rotated in the cluster; stored as AWSPENDING"
    )
    assert vault.pending(Role.WORKER, V2) == SecretStr(first)
    assert swarm.valid_token(first) is Role.WORKER


def test_a_step_hands_the_swarm_the_current_token_to_compare(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Role, str, str | None]] = []
    real = setup.swarm.rotate_token

    def rotate_token(role: Role, version_id: str, current: SecretStr | None = None) -> None:
        seen.append((role, version_id, None if current is None else current.get_secret_value()))
        real(role, version_id, current)

    monkeypatch.setattr(setup.swarm, "rotate_token", rotate_token)
    current = setup.vault.current[Role.MANAGER]
    setup.service.handle(MGR_ARN, V2, "createSecret")
    assert seen == [(Role.MANAGER, V2, current)]


def test_a_step_holds_the_cluster_lease_in_the_name_of_its_role_and_version(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    holders: list[str | None] = []
    real_rotate, real_sync = setup.swarm.rotate_token, setup.swarm.sync_token

    def rotate_token(role: Role, version_id: str, current: SecretStr | None = None) -> None:
        holders.append(setup.state.lease_holder("demo"))
        real_rotate(role, version_id, current)

    def sync_token(role: Role, version_id: str) -> None:
        holders.append(setup.state.lease_holder("demo"))
        real_sync(role, version_id)

    monkeypatch.setattr(setup.swarm, "rotate_token", rotate_token)
    monkeypatch.setattr(setup.swarm, "sync_token", sync_token)
    setup.service.handle(WRK_ARN, V2, "createSecret")
    real_rotate(Role.WORKER, "a-stray-rotation")  # the swarm holds another token than the pending one
    setup.service.handle(WRK_ARN, V2, "testSecret")  # re-synced under the lease
    assert holders == [f"rotation:worker:{V2}", f"rotation:worker:{V2}"]
    assert setup.state.leases == {}


class _ExpiringState(FakeState):
    """The lease is taken when asked, and has expired by the time its holder is read."""

    def acquire_lease(self, cluster: str, holder: str, ttl_seconds: int) -> bool:
        return False

    def lease_holder(self, cluster: str) -> str | None:
        return None


def test_a_lease_whose_holder_cannot_be_read_is_held_by_another_change() -> None:
    setup = make()
    state = _ExpiringState(claims=setup.state.claims)
    service = RotationService(SETTINGS, vault=setup.vault, orchestrator=setup.swarm, state=state)
    with pytest.raises(LeaseHeld) as raised:
        service.handle(WRK_ARN, V2, "createSecret")
    assert (raised.value.cluster, raised.value.holder, str(raised.value)) == (
        "demo",
        "another change",
        "cluster demo lease is held by another change",
    )


def test_a_resync_stores_the_swarms_token_as_a_fresh_version_each_time(setup: Setup) -> None:
    service, vault, swarm = setup.service, setup.vault, setup.swarm
    synced: list[str] = []
    for version in (V2, "fedcba9876543210fedcba9876543210"):
        service.handle(WRK_ARN, version, "createSecret")
        swarm.rotate_token(Role.WORKER, f"stray-{version}")  # a stray rotation whose put was lost
        vault.versions.pop((Role.WORKER, f"stray-{version}"))
        before = set(vault.versions)
        service.handle(WRK_ARN, version, "testSecret")
        ((role, new),) = set(vault.versions) - before
        assert (role, vault.stages(Role.WORKER, new)) == (Role.WORKER, ("AWSCURRENT",))
        synced.append(new)
        assert swarm.valid_token(vault.current[Role.WORKER]) is Role.WORKER
    assert all(str(uuid.UUID(v)) == v for v in synced)  # a fresh uuid: Secrets Manager's version id format
    assert len(set(synced) | {V2}) == 3  # a new version each time, never the step's own


def test_a_step_gives_up_once_it_has_waited_its_whole_lease_wait(setup: Setup) -> None:
    clock = SimClock()
    service = RotationService(
        SETTINGS, vault=setup.vault, orchestrator=setup.swarm, state=setup.state, clock=clock, lease_wait=60
    )
    start = clock.now()
    assert setup.state.acquire_lease("demo", "guard:remove-node", 600)
    with pytest.raises(LeaseHeld, match="guard:remove-node"):
        service.handle(WRK_ARN, V2, "createSecret")
    assert (clock.now() - start).total_seconds() == 60  # 12 polls of 5 s: 60 s waited is the whole wait
