"""Random sequences of operations and failures against SimSwarm, checked against Raft's rules.

The test keeps its own record of the network (which machines are up, which segment each is in) and of
the member list it expects (every node that joined and was not removed), and after every step checks:

- a leader exists only with a majority of all voters (Down ones included) up in its segment, and
  whenever such a majority exists (safety and liveness);
- ``members()`` answers exactly when a majority is reachable, ``NoLeader`` when managers answer but no
  majority does, ``Unreachable`` when no manager answers; and it never loses a member silently;
- a node linked to the leader is never shown Down, and shows Down no sooner than ``down_delay`` after
  the test last saw it linked;
- refusals name the right reason (a manager for MustDemoteFirst, a Ready node for NodeNotDown...).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from tests.unit.sim.sim_harness import Harness

from autojoin.domain.model import Role
from autojoin.errors import (
    AlreadyInSwarm,
    DemotionWouldLoseQuorum,
    LastManager,
    MustDemoteFirst,
    NodeNotDown,
    NoLeader,
    OrchestratorError,
    Unreachable,
)

picks = st.integers(min_value=0, max_value=10_000)


class SwarmMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(down_delay=10)
        self.swarm = self.h.swarm
        self.up: dict[str, bool] = {}
        self.segment: dict[str, int] = {}
        self.expected: set[str] = set()
        self.next_instance = 0
        self.next_segment = 1
        self.last_linked: dict[str, datetime] = {}  # node id -> when this test last saw it linked

    # --- helpers -----------------------------------------------------------------------------------

    def new_instance(self) -> str:
        iid = f"i-{self.next_instance:03d}"
        self.next_instance += 1
        self.up[iid] = True
        self.segment[iid] = 0
        return iid

    def rows(self) -> list[dict[str, Any]]:
        return self.swarm.snapshot()

    def instances(self) -> list[str]:
        return sorted(self.up)

    def pick_instance(self, k: int) -> str:
        ids = self.instances()
        return ids[k % len(ids)]

    def pick_node(self, k: int) -> dict[str, Any]:
        rows = self.rows()
        return rows[k % len(rows)]

    def alive(self, row: dict[str, Any]) -> bool:
        return self.up[row["instance_id"]] and bool(row["in_swarm"])

    def majority_segment(self) -> int | None:
        voters = [r for r in self.rows() if r["voter"]]
        counts: dict[int, int] = {}
        for r in voters:
            if self.alive(r):
                seg = self.segment[r["instance_id"]]
                counts[seg] = counts.get(seg, 0) + 1
        need = len(voters) // 2 + 1
        return next((s for s, c in counts.items() if c >= need), None)

    def answers(self, iid: str) -> bool:
        """Commands reach a machine that is up and on the control plane's (main) side."""
        return self.up[iid] and self.segment[iid] == 0

    def any_voter_answers(self) -> bool:
        return any(r["voter"] and self.alive(r) and self.answers(r["instance_id"]) for r in self.rows())

    def check_cluster_refusal(self, exc: OrchestratorError) -> None:
        if isinstance(exc, NoLeader):
            assert self.majority_segment() != 0
            assert self.any_voter_answers()
        elif isinstance(exc, Unreachable):
            assert not self.any_voter_answers()
        else:  # pragma: no cover - a failure report
            raise AssertionError(f"unexpected {type(exc).__name__}: {exc}")

    # --- setup -------------------------------------------------------------------------------------

    @initialize(managers=st.integers(min_value=1, max_value=5), workers=st.integers(min_value=0, max_value=3))
    def start(self, managers: int, workers: int) -> None:
        first = self.new_instance()
        self.expected.add(self.h.init(first))
        for role, count in ((Role.MANAGER, managers - 1), (Role.WORKER, workers)):
            for _ in range(count):
                self.expected.add(self.h.add(self.new_instance(), role))

    # --- operations through the port --------------------------------------------------------------

    @rule(role=st.sampled_from(Role), rejoin=st.booleans(), k=picks)
    def join(self, role: Role, rejoin: bool, k: int) -> None:
        if rejoin:
            iid = self.pick_instance(k)
            if not self.answers(iid):
                return
        else:
            iid = self.new_instance()
        self.h.offer(iid, role)
        was_in = self.swarm.in_swarm(iid)
        try:
            node_id = self.swarm.join(iid, role)
        except AlreadyInSwarm:
            assert was_in
        except (NoLeader, Unreachable) as exc:
            event(f"join: {type(exc).__name__}")
            assert not was_in
            # NoLeader: the manager it reached has no majority; Unreachable: it reached none
            if isinstance(exc, NoLeader):
                assert self.majority_segment() != 0
        else:
            assert not was_in
            assert self.majority_segment() == self.segment[iid] == 0
            self.expected.add(node_id)

    @rule(k=picks)
    def promote(self, k: int) -> None:
        row = self.pick_node(k)
        try:
            self.swarm.promote(row["node_id"])
        except (NoLeader, Unreachable) as exc:
            self.check_cluster_refusal(exc)

    @rule(k=picks)
    def demote(self, k: int) -> None:
        row = self.pick_node(k)
        managers = [r for r in self.rows() if r["role"] == "manager"]
        try:
            self.swarm.demote(row["node_id"])
        except LastManager:
            event("demote: last manager")
            assert managers == [row]
        except DemotionWouldLoseQuorum:
            event("demote: would lose quorum")
            assert row["voter"]
        except (NoLeader, Unreachable) as exc:
            self.check_cluster_refusal(exc)

    @rule(k=picks, az=st.sampled_from(["a", "b", "c"]))
    def label_and_drain(self, k: int, az: str) -> None:
        row = self.pick_node(k)
        try:
            self.swarm.label(row["node_id"], {"az": az})
            self.swarm.drain(row["node_id"])
        except (NoLeader, Unreachable) as exc:
            self.check_cluster_refusal(exc)

    @rule(k=picks)
    def leave(self, k: int) -> None:
        iid = self.pick_instance(k)
        try:
            self.swarm.leave(iid)
        except Unreachable:
            assert not self.answers(iid)
        except (MustDemoteFirst, LastManager):
            mine = [r for r in self.rows() if r["instance_id"] == iid and r["in_swarm"]]
            assert [r["role"] for r in mine] == ["manager"]
        else:
            assert not self.swarm.in_swarm(iid)

    @rule(k=picks)
    def remove(self, k: int) -> None:
        row = self.pick_node(k)
        try:
            self.swarm.remove(row["node_id"])
        except MustDemoteFirst:
            assert row["role"] == "manager"
        except NodeNotDown:
            assert row["status"] == "ready"
        except (NoLeader, Unreachable) as exc:
            self.check_cluster_refusal(exc)
        else:
            event("remove: done")
            assert row["role"] == "worker" and row["status"] == "down"
            self.expected.discard(row["node_id"])

    @rule(k=picks)
    def retire(self, k: int) -> None:
        """The graceful path autojoin takes: demote, leave, wait for Down, remove."""
        row = self.pick_node(k)
        if not self.answers(row["instance_id"]) or not row["in_swarm"]:
            return
        try:
            if row["role"] == "manager":
                self.swarm.demote(row["node_id"])
            self.swarm.leave(row["instance_id"])
            self.h.clock.advance(10)
            self.swarm.remove(row["node_id"])
        except LastManager:
            event("retire: last manager")
        except DemotionWouldLoseQuorum:
            event("retire: would lose quorum")
            assert row["voter"]
        except (NoLeader, Unreachable) as exc:
            event(f"retire: {type(exc).__name__}")
            self.check_cluster_refusal(exc)
        else:
            event("retire: done")
            self.expected.discard(row["node_id"])

    @rule(role=st.sampled_from(Role), version=st.integers(min_value=1, max_value=5))
    def rotate(self, role: Role, version: int) -> None:
        try:
            self.swarm.rotate_token(role, f"v{version}")
        except (NoLeader, Unreachable) as exc:
            self.check_cluster_refusal(exc)
        else:
            assert self.swarm.token_works(role, f"v{version}")
            self.h.world.current[role] = self.h.world.pending[(role, f"v{version}")]  # finishSecret

    # --- failures and time -------------------------------------------------------------------------

    @rule(k=picks)
    def crash(self, k: int) -> None:
        iid = self.pick_instance(k)
        self.swarm.crash(iid)
        self.up[iid] = False

    @rule(k=picks)
    def restart(self, k: int) -> None:
        iid = self.pick_instance(k)
        self.swarm.restart(iid)
        self.up[iid] = True

    @rule(ks=st.lists(picks, min_size=1, max_size=4))
    def partition(self, ks: list[int]) -> None:
        ids = sorted({self.pick_instance(k) for k in ks})
        self.swarm.partition(ids)
        for iid in ids:
            self.segment[iid] = self.next_segment
        self.next_segment += 1

    @rule(k=picks, everyone=st.booleans())
    def heal(self, k: int, everyone: bool) -> None:
        ids = self.instances() if everyone else [self.pick_instance(k)]
        self.swarm.heal(ids)
        for iid in ids:
            self.segment[iid] = 0

    @rule(seconds=st.sampled_from([0.5, 5, 9.9, 10, 60]))
    def advance(self, seconds: float) -> None:
        self.h.clock.advance(seconds)

    # --- invariants --------------------------------------------------------------------------------

    @invariant()
    def a_leader_only_with_a_majority_and_always_with_one(self) -> None:
        leader = self.swarm.leader()
        majority = self.majority_segment()
        if leader is None:
            assert majority is None
            return
        assert majority is not None
        assert self.segment[leader] == majority
        assert self.up[leader]
        leaders = [r for r in self.rows() if r["manager_status"] == "leader"]
        assert len(leaders) == 1
        assert leaders[0]["instance_id"] == leader and leaders[0]["voter"] and leaders[0]["in_swarm"]

    @invariant()
    def members_answer_exactly_with_a_majority_and_lose_nobody(self) -> None:
        assert {r["node_id"] for r in self.rows()} == self.expected
        try:
            members = self.swarm.members()
        except (NoLeader, Unreachable) as exc:
            event(f"members: {type(exc).__name__}")
            self.check_cluster_refusal(exc)
        else:
            event("members: answered")
            assert self.majority_segment() == 0
            assert {m.node_id for m in members} == self.expected
            assert sum(1 for m in members if m.leader) == 1

    @invariant()
    def linked_nodes_are_ready_and_down_nodes_are_cut_off(self) -> None:
        majority = self.majority_segment()
        if majority is None:
            return
        for r in self.rows():
            linked = self.alive(r) and self.segment[r["instance_id"]] == majority
            if linked:
                self.last_linked[r["node_id"]] = self.h.clock.now()
                assert r["status"] == "ready"
                if r["role"] == "manager":
                    assert r["voter"] and r["manager_status"] in {"leader", "reachable"}

    @invariant()
    def down_only_after_the_delay(self) -> None:
        now = self.h.clock.now()
        for r in self.rows():
            seen = self.last_linked.get(r["node_id"])
            if r["status"] == "down" and seen is not None:
                assert now - seen >= timedelta(seconds=10)

    @invariant()
    def there_is_always_a_manager(self) -> None:
        assert any(r["role"] == "manager" for r in self.rows())
        assert any(r["voter"] for r in self.rows())


SwarmMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSwarmProperties = SwarmMachine.TestCase
