"""LaunchService against in-memory fakes and the SimSwarm (the in-memory orchestrator)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from tests.fakes import FakeFleet, FakeHandOff, FakeState, FakeVault

from autojoin.adapters.sim.clock import SimClock
from autojoin.adapters.sim.swarm import SimSwarm
from autojoin.domain.model import LifecycleAction, LifecycleKind, LifecycleResult, Role
from autojoin.errors import JoinDeferred, NodeNotReady, NoLeader
from autojoin.ports import CompletionOutcome
from autojoin.services.launch import LaunchConfig, LaunchService, Outcome

ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


@dataclass
class World:
    fleet: FakeFleet
    vault: FakeVault
    handoff: FakeHandOff
    state: FakeState
    swarm: SimSwarm
    service: LaunchService
    clock: SimClock
    n: int = 0

    def launch(self, role: Role, az: str, **extra: str | None) -> LifecycleAction:
        self.n += 1
        iid = f"i-{self.n:017x}"
        group = "mgr" if role is Role.MANAGER else "wrk"
        self.fleet.launch(iid, group, az, f"10.0.0.{self.n}")
        return LifecycleAction(
            kind=LifecycleKind.LAUNCHING,
            group=group,
            instance_id=iid,
            hook="autojoin-launch",
            token=f"tok-{self.n}",
            event_id=f"ev-{self.n}",
            **extra,
        )


@pytest.fixture
def world() -> World:
    clock = SimClock()
    fleet = FakeFleet()
    fleet.add_group("mgr", "demo", Role.MANAGER, ZONES)
    fleet.add_group("wrk", "demo", Role.WORKER, ZONES)
    fleet.add_group("other", None, None, ZONES)
    vault, handoff, state = FakeVault(), FakeHandOff(), FakeState()
    swarm = SimSwarm(
        clock,
        take_ticket=handoff.take,
        store_token=vault.store,
        address_of=lambda iid: fleet.by_id[iid].private_ip or "",
        read_pending=vault.pending,
    )
    service = LaunchService(
        LaunchConfig(cluster="demo"),
        fleet=fleet,
        vault=vault,
        handoff=handoff,
        orchestrator=swarm,
        state=state,
        clock=clock,
    )
    return World(fleet, vault, handoff, state, swarm, service, clock)


def test_first_manager_bootstraps_and_stores_both_tokens(world: World) -> None:
    action = world.launch(Role.MANAGER, "us-east-1a")
    decision = world.service.handle(action)
    assert decision.outcome is Outcome.BOOTSTRAPPED
    assert decision.result is LifecycleResult.CONTINUE and decision.completion is CompletionOutcome.COMPLETED
    assert set(world.vault.current) == {Role.MANAGER, Role.WORKER}
    assert world.swarm.valid_token(world.vault.current[Role.WORKER]) is Role.WORKER
    member = world.swarm.members()[0]
    assert member.role is Role.MANAGER and member.leader
    assert member.labels == {
        "az": "us-east-1a",
        "instance-id": action.instance_id,
        "asg": "mgr",
        "instance-type": "t3.small",
    }
    assert world.state.is_bootstrapped("demo")


def test_grows_to_three_managers_and_five_workers_with_right_roles_and_labels(world: World) -> None:
    for i in range(3):
        assert world.service.handle(world.launch(Role.MANAGER, ZONES[i])).result is LifecycleResult.CONTINUE
    for i in range(5):
        d = world.service.handle(world.launch(Role.WORKER, ZONES[i % 3]))
        assert (d.outcome, d.role, d.result) == (Outcome.JOINED, Role.WORKER, LifecycleResult.CONTINUE)
    members = world.swarm.members()
    assert sorted(m.role.value for m in members) == ["manager"] * 3 + ["worker"] * 5
    assert all(m.ready for m in members)
    assert {m.labels["az"] for m in members if m.role is Role.MANAGER} == set(ZONES)
    assert [c[1:] for c in world.fleet.completions] == [
        (LifecycleResult.CONTINUE, CompletionOutcome.COMPLETED)
    ] * 8
    assert world.handoff.slots == {}  # nothing left behind
    view = world.state.snapshot("demo")
    assert view is not None and view.manager_layout() == {z: 1 for z in ZONES}


def test_two_managers_at_the_same_moment_make_one_cluster(world: World) -> None:
    first = world.launch(Role.MANAGER, "us-east-1a")
    second = world.launch(Role.MANAGER, "us-east-1b")
    # the first's handler has claimed the bootstrap and is still running when the second's arrives
    assert world.state.claim_bootstrap("demo", first.instance_id)
    waiting = world.service.handle(second)
    assert waiting.outcome is Outcome.PENDING and waiting.result is None
    assert second.instance_id in world.fleet.heartbeats
    done = world.service.handle(first)
    assert done.outcome is Outcome.BOOTSTRAPPED
    assert [(d.instance_id, d.outcome) for d in done.also_joined] == [(second.instance_id, Outcome.JOINED)]
    assert sorted(m.role.value for m in world.swarm.members()) == ["manager", "manager"]
    assert world.state.pending("demo") == []


def test_worker_before_any_manager_waits_then_joins_when_the_cluster_exists(world: World) -> None:
    worker = world.launch(Role.WORKER, "us-east-1c")
    assert world.service.handle(worker).outcome is Outcome.PENDING
    assert world.fleet.completions == []
    boot = world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    assert [(d.instance_id, d.role, d.result) for d in boot.also_joined] == [
        (worker.instance_id, Role.WORKER, LifecycleResult.CONTINUE)
    ]


def test_a_worker_never_gets_the_manager_token(world: World) -> None:
    world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    for _ in range(3):
        world.service.handle(world.launch(Role.WORKER, "us-east-1b"))
    assert {role for iid, role in world.handoff.offered if world.fleet.by_id[iid].group == "wrk"} == {
        Role.WORKER
    }


def test_group_of_no_cluster_is_ignored_and_not_completed(world: World) -> None:
    world.fleet.launch("i-0000000000000abcd", "other", "us-east-1a", "10.0.9.9")
    action = LifecycleAction(
        kind=LifecycleKind.LAUNCHING, group="other", instance_id="i-0000000000000abcd", hook="h"
    )
    assert world.service.handle(action).outcome is Outcome.IGNORED
    unknown = action.model_copy(update={"group": "nope"})
    assert world.service.handle(unknown).outcome is Outcome.IGNORED
    assert world.fleet.completions == []


def test_test_notification_and_terminate_are_not_launches(world: World) -> None:
    assert (
        world.service.handle(LifecycleAction(kind=LifecycleKind.TEST, group="mgr")).outcome is Outcome.IGNORED
    )
    term = LifecycleAction(kind=LifecycleKind.TERMINATING, group="mgr", instance_id="i-1", hook="h")
    assert world.service.handle(term).outcome is Outcome.IGNORED


def test_warm_pool_launch_continues_without_joining(world: World) -> None:
    action = world.launch(Role.WORKER, "us-east-1a", origin="EC2", destination="WarmPool")
    d = world.service.handle(action)
    assert (d.outcome, d.result) == (Outcome.WARM_POOL, LifecycleResult.CONTINUE)
    assert world.handoff.offered == []


def test_late_event_for_a_gone_instance_is_a_no_op(world: World) -> None:
    action = world.launch(Role.WORKER, "us-east-1a")
    world.fleet.by_id[action.instance_id] = world.fleet.by_id[action.instance_id].model_copy(
        update={"state": "terminated"}
    )
    assert world.service.handle(action).outcome is Outcome.GONE
    del world.fleet.by_id[action.instance_id]
    assert world.service.handle(action).outcome is Outcome.GONE
    assert world.fleet.completions == []


def test_duplicate_event_joins_once_and_treats_already_done_as_success(world: World) -> None:
    world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    action = world.launch(Role.WORKER, "us-east-1b")
    first = world.service.handle(action)
    again = world.service.handle(action)
    assert first.outcome is Outcome.JOINED
    assert (again.outcome, again.completion) == (Outcome.ALREADY_MEMBER, CompletionOutcome.ALREADY_DONE)
    assert len(world.swarm.members()) == 2
    assert [r for _i, r in world.handoff.offered].count(Role.WORKER) == 1


def test_join_after_rotation_refreshes_the_token_and_retries_once(world: World) -> None:
    world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    world.vault.token(Role.WORKER)  # cached copy now stale once the swarm rotates
    old = world.vault.current[Role.WORKER]
    world.swarm.rotate_token(Role.WORKER, "v2")  # createSecret done, finishSecret not yet
    d = world.service.handle(world.launch(Role.WORKER, "us-east-1b"))
    assert (d.outcome, d.result) == (Outcome.JOINED, LifecycleResult.CONTINUE)
    assert world.swarm.valid_token(old) is None
    assert [r for _i, r in world.handoff.offered].count(Role.WORKER) == 2  # first try + one retry


def test_no_leader_keeps_the_launch_pending_instead_of_churning_instances(world: World) -> None:
    m = [world.launch(Role.MANAGER, z) for z in ZONES]
    for a in m:
        world.service.handle(a)
    world.swarm.crash(m[0].instance_id)
    world.swarm.crash(m[1].instance_id)
    world.clock.advance(60)
    action = world.launch(Role.WORKER, "us-east-1c")
    d = world.service.handle(action)
    assert (d.outcome, d.result, d.error) == (Outcome.PENDING, None, "NoLeader")
    assert "no leader" in d.reason and action.instance_id in world.fleet.heartbeats
    assert world.handoff.slots == {} and world.handoff.offered == [
        (m[1].instance_id, Role.MANAGER),
        (m[2].instance_id, Role.MANAGER),
    ]
    # quorum comes back: the next join finishes the waiting one too
    world.swarm.restart(m[0].instance_id)
    world.clock.advance(60)
    later = world.service.handle(world.launch(Role.WORKER, "us-east-1a"))
    assert later.outcome is Outcome.JOINED
    assert [(x.instance_id, x.outcome) for x in later.also_joined] == [(action.instance_id, Outcome.JOINED)]


def test_no_manager_reachable_keeps_the_launch_pending(world: World) -> None:
    m = world.launch(Role.MANAGER, "us-east-1a")
    world.service.handle(m)
    world.swarm.crash(m.instance_id)
    d = world.service.handle(world.launch(Role.WORKER, "us-east-1b"))
    assert (d.outcome, d.error) == (Outcome.PENDING, "Unreachable")
    assert "no manager" in d.reason


def test_missing_secret_abandons(world: World) -> None:
    world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    del world.vault.current[Role.WORKER]
    d = world.service.handle(world.launch(Role.WORKER, "us-east-1b"))
    assert (d.outcome, d.result, d.error) == (Outcome.ABANDONED, LifecycleResult.ABANDON, "SecretMissing")


def test_failed_init_releases_the_claim_and_abandons(world: World) -> None:
    action = world.launch(Role.MANAGER, "us-east-1a")
    world.swarm.crash(action.instance_id)  # the node does not answer
    d = world.service.handle(action)
    assert (d.outcome, d.result, d.error) == (Outcome.ABANDONED, LifecycleResult.ABANDON, "Unreachable")
    assert world.state.bootstrap_owner("demo") is None
    nxt = world.service.handle(world.launch(Role.MANAGER, "us-east-1b"))
    assert nxt.outcome is Outcome.BOOTSTRAPPED


def test_pending_action_whose_hook_already_ended_is_dropped(world: World) -> None:
    action = world.launch(Role.WORKER, "us-east-1a")
    world.fleet.open_actions.discard(action.instance_id)
    assert world.service.handle(action).outcome is Outcome.GONE
    assert world.state.pending("demo") == []


def test_decision_dict_is_plain_json(world: World) -> None:
    d = world.service.handle(world.launch(Role.MANAGER, "us-east-1a")).to_dict()
    assert d["outcome"] == "bootstrapped" and d["result"] == "CONTINUE" and d["role"] == "manager"
    assert "SWMTKN" not in repr(d)


def test_node_not_ready_yet_keeps_the_hook_alive_and_defers(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    action = world.launch(Role.WORKER, "us-east-1b")

    def booting(instance_id: str, role: Role) -> str:
        raise NodeNotReady(f"{instance_id} is still booting")

    monkeypatch.setattr(world.swarm, "join", booting)
    with pytest.raises(JoinDeferred):
        world.service.handle(action)
    assert action.instance_id in world.fleet.heartbeats
    assert [a.instance_id for a, _ in world.state.pending("demo")] == [action.instance_id]
    assert world.fleet.completions[-1][0] != action.instance_id  # not abandoned
    monkeypatch.undo()
    retried = world.service.handle(action)  # Lambda's retry, once the node is up
    assert (retried.outcome, retried.result) == (Outcome.JOINED, LifecycleResult.CONTINUE)
    assert world.state.pending("demo") == []


def test_pending_node_still_booting_stays_pending_when_the_cluster_appears(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = world.launch(Role.WORKER, "us-east-1c")
    world.service.handle(worker)
    real_join = world.swarm.join

    def join(instance_id: str, role: Role) -> str:
        if instance_id == worker.instance_id:
            raise NodeNotReady("booting")
        return real_join(instance_id, role)

    monkeypatch.setattr(world.swarm, "join", join)
    boot = world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    assert boot.outcome is Outcome.BOOTSTRAPPED
    assert [(d.instance_id, d.outcome) for d in boot.also_joined] == [(worker.instance_id, Outcome.PENDING)]
    assert [a.instance_id for a, _ in world.state.pending("demo")] == [worker.instance_id]
    assert [
        d.instance_id for d in world.service.handle(world.launch(Role.WORKER, "us-east-1b")).also_joined
    ] == [worker.instance_id]  # the next successful join finishes it


def test_first_manager_still_booting_keeps_its_claim_and_bootstraps_on_retry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = world.launch(Role.MANAGER, "us-east-1a")
    real_init = world.swarm.init

    def booting(instance_id: str, address: str) -> str:
        raise NodeNotReady("SSM does not know the instance yet")

    monkeypatch.setattr(world.swarm, "init", booting)
    with pytest.raises(JoinDeferred):
        world.service.handle(first)
    assert world.state.bootstrap_owner("demo") == first.instance_id and not world.state.is_bootstrapped(
        "demo"
    )
    assert first.instance_id in world.fleet.heartbeats and world.fleet.completions == []
    other = world.launch(Role.MANAGER, "us-east-1b")
    assert world.service.handle(other).outcome is Outcome.PENDING  # the claim is held by a live instance
    monkeypatch.setattr(world.swarm, "init", real_init)
    done = world.service.handle(first)  # Lambda's retry
    assert done.outcome is Outcome.BOOTSTRAPPED
    assert [(d.instance_id, d.outcome) for d in done.also_joined] == [(other.instance_id, Outcome.JOINED)]
    assert world.state.pending("demo") == []


def test_a_claim_whose_owner_is_gone_is_taken_over(world: World) -> None:
    gone = world.launch(Role.MANAGER, "us-east-1a")
    assert world.state.claim_bootstrap("demo", gone.instance_id)  # claimed, then the instance died
    world.fleet.by_id[gone.instance_id] = world.fleet.by_id[gone.instance_id].model_copy(
        update={"state": "terminated"}
    )
    nxt = world.launch(Role.MANAGER, "us-east-1b")
    assert world.service.handle(nxt).outcome is Outcome.BOOTSTRAPPED
    assert world.state.bootstrap_owner("demo") == nxt.instance_id


def test_a_pending_launch_the_cluster_cannot_take_yet_stays_recorded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = world.launch(Role.WORKER, "us-east-1c")
    world.service.handle(worker)

    def no_leader() -> list[object]:
        raise NoLeader("the swarm does not have a leader")

    # init and label work, but by the time the pending worker is tried the cluster has no leader
    monkeypatch.setattr(world.swarm, "members", no_leader)
    boot = world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    assert boot.outcome is Outcome.BOOTSTRAPPED
    assert [(d.instance_id, d.outcome, d.error) for d in boot.also_joined] == [
        (worker.instance_id, Outcome.PENDING, "NoLeader")
    ]
    assert [a.instance_id for a, _ in world.state.pending("demo")] == [worker.instance_id]


# --- join path hardening (issue 11) ------------------------------------------------------------------


def test_an_instance_that_is_not_the_groups_or_not_launching_gets_no_ticket(world: World) -> None:
    world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    worker = world.launch(Role.WORKER, "us-east-1b")
    # the worker instance named in a MANAGER group's event: the manager token must never be offered
    forged = worker.model_copy(update={"group": "mgr"})
    d = world.service.handle(forged)
    assert (d.outcome, d.error, d.result) == (Outcome.IGNORED, "NotLaunchingInGroup", None)
    assert world.handoff.offered == [] and world.handoff.slots == {}
    # an instance of the group that is not in Pending:Wait (already InService, Terminating...)
    iid = worker.instance_id
    world.fleet.by_id[iid] = world.fleet.by_id[iid].model_copy(update={"lifecycle_state": "InService"})
    d = world.service.handle(worker)
    assert (d.outcome, d.error) == (Outcome.IGNORED, "NotLaunchingInGroup")
    assert world.handoff.offered == [] and len(world.swarm.members()) == 1


def test_finishing_a_pending_launch_reads_the_groups_role_again(world: World) -> None:
    first = world.launch(Role.MANAGER, "us-east-1a")
    assert world.state.claim_bootstrap("demo", first.instance_id)
    worker = world.launch(Role.WORKER, "us-east-1b")
    assert world.service.handle(worker).outcome is Outcome.PENDING
    # the pending record claims MANAGER (a stale or tampered record): the group's tags say worker
    world.state.waiting["demo"][worker.instance_id] = (worker, Role.MANAGER)
    done = world.service.handle(first)
    assert [(d.instance_id, d.role, d.outcome) for d in done.also_joined] == [
        (worker.instance_id, Role.WORKER, Outcome.JOINED)
    ]
    assert (worker.instance_id, Role.MANAGER) not in world.handoff.offered


def test_a_token_refused_twice_defers_the_launch_instead_of_abandoning(world: World) -> None:
    world.service.handle(world.launch(Role.MANAGER, "us-east-1a"))
    # a half-finished rotation: the swarm rotated, the secret never got the new token
    world.vault.current[Role.WORKER] = "SWMTKN-1-" + "0" * 50 + "-" + "9" * 25
    action = world.launch(Role.WORKER, "us-east-1b")
    with pytest.raises(JoinDeferred):
        world.service.handle(action)
    assert world.fleet.completions[1:] == []  # no ABANDON
    assert [a.instance_id for a, _r in world.state.pending("demo")] == [action.instance_id]
    assert action.instance_id in world.fleet.heartbeats and world.handoff.slots == {}


class _LyingSwarm(SimSwarm):
    """A node that reports another node's id after its join (root on the instance controls its output)."""

    claim: str = ""

    def join(self, instance_id: str, role: Role) -> str:
        super().join(instance_id, role)
        return self.claim


def test_a_node_id_that_is_not_the_joining_nodes_is_never_labelled(world: World) -> None:
    swarm = _LyingSwarm(
        world.clock,
        take_ticket=world.handoff.take,
        store_token=world.vault.store,
        address_of=lambda iid: world.fleet.by_id[iid].private_ip or "",
        read_pending=world.vault.pending,
    )
    world.service.orchestrator = swarm
    manager = world.launch(Role.MANAGER, "us-east-1a")
    manager_id = world.service.handle(manager).node_id
    assert manager_id is not None
    swarm.claim = manager_id  # the worker claims to be the manager node
    d = world.service.handle(world.launch(Role.WORKER, "us-east-1b"))
    assert (d.outcome, d.result, d.error) == (Outcome.ABANDONED, LifecycleResult.ABANDON, "_ForeignNode")
    labels = next(m.labels for m in swarm.members() if m.node_id == manager_id)
    assert labels["instance-id"] == manager.instance_id and labels["asg"] == "mgr"


def test_pending_launches_start_only_while_a_whole_join_budget_is_left(world: World) -> None:
    first = world.launch(Role.MANAGER, "us-east-1a")
    assert world.state.claim_bootstrap("demo", first.instance_id)
    worker = world.launch(Role.WORKER, "us-east-1b")
    assert world.service.handle(worker).outcome is Outcome.PENDING
    budget = world.service.config.join_budget
    done = world.service.handle(first, time_left=lambda: budget - 1)
    assert done.outcome is Outcome.BOOTSTRAPPED
    assert [(d.instance_id, d.outcome) for d in done.also_joined] == [(worker.instance_id, Outcome.PENDING)]
    assert [a.instance_id for a, _r in world.state.pending("demo")] == [worker.instance_id]
    assert world.handoff.offered == []  # no join was started that could be cut off before its clean-up
