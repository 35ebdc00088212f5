"""The reconciler never raises the manager group's desired capacity a second time for one surge, even when
its surge instance is in service but not a swarm manager.

Our surge (desired 5 -> 6, surge_from 5) launched and joined, and before the next run its node left the
swarm or was demoted (an operator's ``docker node rm --force`` or ``docker node demote``, a daemon whose
swarm state was lost): the instance stays InService. The run then counts 5 managers for a target of 5 with
6 instances for a desired of 6, nothing in flight. Before the fix, next_step planned the same add again (C
is still the group's least-populated AZ), desired went to 7, and from the next run on 7 (no longer
surge_from + 1) became the target for good. Both tests failed before the fix (desired calls [6, 7])."""

from __future__ import annotations

from tests.unit.services.reconcile_world import A, B, C, World, make_world

from autojoin.domain.model import Role


def _leave_swarm(w: World, iid: str) -> None:
    """The node of ``iid`` leaves the swarm; its instance stays InService in the group."""
    node_id = w.swarm.node_id_of(iid)
    assert node_id is not None
    w.swarm.demote(node_id)
    w.swarm.leave(iid)
    w.clock.advance(120)
    w.swarm.remove(node_id)


def test_an_unjoined_surge_instance_gets_a_second_surge() -> None:
    w = make_world((A, B, C), {A: 3, B: 2})
    w.service().run()
    assert w.fleet.desired_calls == [("mgr", 6)] and w.state.records["demo"].surge_from == 5
    surge = w.join(Role.MANAGER, C)  # the group launched into C; on_launch joined it; InService
    _leave_swarm(w, surge)
    assert w.fleet.by_id[surge].lifecycle_state == "InService"

    report = w.service().run()

    # before the fix this run took "launch in us-east-1c: 3-2-0 -> 3-2-1 toward 2-2-1 (tolerates 0)" again
    assert report.target == 5
    assert w.fleet.desired_calls == [("mgr", 6)], "desired raised a second time for the same surge"
    assert report.to_dict()["step"].startswith("wait: our surge (desired 6 for a target of 5) is in service")


def test_a_surge_demoted_to_a_worker_gets_a_second_surge() -> None:
    """The same with only ``docker node demote`` on the surge: still a member, no longer a manager."""
    w = make_world((A, B, C), {A: 3, B: 2})
    w.service().run()
    surge = w.join(Role.MANAGER, C)
    node_id = w.swarm.node_id_of(surge)
    assert node_id is not None
    w.swarm.demote(node_id)

    report = w.service().run()

    assert report.target == 5
    assert w.fleet.desired_calls == [("mgr", 6)], "desired raised a second time for the same surge"
