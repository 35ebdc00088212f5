"""The composition root: lazy, one client per service, and the order managers are reached in."""

from __future__ import annotations

import boto3
from tests.fakes import FakeFleet, FakeState

from autojoin.bootstrap import Deps, build_deps
from autojoin.domain.model import ClusterView, Node, Role
from autojoin.settings import Settings

ZONES = ("a", "b", "c")


def deps_with(fleet: FakeFleet, state: FakeState) -> Deps:
    settings = Settings(cluster="demo", state_table="t", region="us-east-1")
    deps = build_deps(
        settings,
        session=boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"),
    )
    deps.__dict__.update(fleet=fleet, state=state)
    return deps


def test_nothing_is_built_until_asked_and_clients_are_reused() -> None:
    deps = deps_with(FakeFleet(), FakeState())
    assert "orchestrator" not in deps.__dict__ and "vault" not in deps.__dict__
    assert deps.client("ssm") is deps.client("ssm")


def test_managers_are_reached_leader_first_then_known_then_owner_then_live_instances() -> None:
    fleet, state = FakeFleet(), FakeState()
    fleet.add_group("mgr", "demo", Role.MANAGER, ZONES)
    fleet.add_group("wrk", "demo", Role.WORKER, ZONES)
    for iid, lc in (
        ("i-new", "Pending:Wait"),
        ("i-svc", "InService"),
        ("i-gone", "Terminating:Wait"),
        ("i-old", "InService"),
        ("i-lead", "InService"),
    ):
        fleet.launch(iid, "mgr", "a", "10.0.0.1")
        fleet.by_id[iid] = fleet.by_id[iid].model_copy(update={"lifecycle_state": lc})
    fleet.launch("i-w", "wrk", "a", "10.0.0.9")
    state.save_snapshot(
        ClusterView(
            cluster="demo",
            zones=ZONES,
            nodes=(
                Node(instance_id="i-old", role=Role.MANAGER, az="a"),
                Node(instance_id="i-lead", role=Role.MANAGER, az="b", leader=True),
                Node(instance_id="i-sick", role=Role.MANAGER, az="c", healthy=False),
            ),
        )
    )
    state.claim_bootstrap("demo", "i-boot")
    order = deps_with(fleet, state).manager_instances()
    assert order == ["i-lead", "i-old", "i-boot", "i-svc", "i-new"]


def test_a_first_manager_still_in_pending_wait_is_reachable() -> None:
    fleet, state = FakeFleet(), FakeState()
    fleet.add_group("mgr", "demo", Role.MANAGER, ZONES)
    fleet.launch("i-first", "mgr", "a", "10.0.0.1")  # Pending:Wait while it initialises the cluster
    assert deps_with(fleet, state).manager_instances() == ["i-first"]
