"""The reconciler's pure parts as whole values: ``build_view`` (the ClusterView every run saves as the
snapshot) and ``ReconcileReport.to_dict`` (what the handler logs and returns)."""

from __future__ import annotations

from datetime import UTC, datetime

from autojoin.domain.model import ClusterView, InstanceInfo, Node, Role
from autojoin.domain.rebalance import RebalanceStep, StepKind
from autojoin.ports import Member
from autojoin.services.launch import LaunchDecision, Outcome
from autojoin.services.reconcile import ReconcileReport, build_view

A, B, C = "us-east-1a", "us-east-1b", "us-east-1c"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def member(node_id: str, role: Role = Role.WORKER, **kw: object) -> Member:
    fields: dict[str, object] = {
        "hostname": f"host-{node_id}",
        "ready": True,
        "available": True,
        "reachable": True,
        "in_raft": role is Role.MANAGER,
    }
    fields.update(kw)
    return Member(node_id=node_id, role=role, **fields)  # type: ignore[arg-type]


def test_the_view_takes_ids_az_group_and_type_from_ec2_first_then_from_the_labels() -> None:
    members = [
        # labelled with its instance id and known to EC2: EC2's AZ, group and type win over the labels
        member(
            "n1",
            Role.MANAGER,
            leader=True,
            address="10.0.0.1",
            instance_id="i-1",
            labels={"az": C, "asg": "old", "instance-type": "t3.nano"},
        ),
        # not labelled yet (no instance_id): the instance-id label, then the hostname name the instance
        member("n2", labels={"instance-id": "i-2"}),
        member("n3", hostname="i-3", labels={"az": B, "asg": "wrk", "instance-type": "m5.large"}),
        # nothing known anywhere
        member("n4", hostname="i-4"),
        # EC2 knows the instance but not its group or type: those come from the labels
        member("n5", instance_id="i-5", labels={"asg": "wrk", "instance-type": "c5.large"}),
    ]
    instances = {
        "i-1": InstanceInfo(instance_id="i-1", az=A, group="mgr", instance_type="t3.small"),
        "i-2": InstanceInfo(instance_id="i-2", az=B, group="wrk", instance_type="t3.micro"),
        "i-5": InstanceInfo(instance_id="i-5", az=C),
        "i-3-not": InstanceInfo(instance_id="i-3-not", az=A, group="x"),
    }
    view = build_view("demo", members, instances, [C, A, B], NOW)
    assert view == ClusterView(
        cluster="demo",
        nodes=(
            Node(
                instance_id="i-1",
                role=Role.MANAGER,
                az=A,
                group="mgr",
                node_id="n1",
                address="10.0.0.1",
                instance_type="t3.small",
                leader=True,
            ),
            Node(
                instance_id="i-2", role=Role.WORKER, az=B, group="wrk", node_id="n2", instance_type="t3.micro"
            ),
            Node(
                instance_id="i-3", role=Role.WORKER, az=B, group="wrk", node_id="n3", instance_type="m5.large"
            ),
            Node(
                instance_id="i-4", role=Role.WORKER, az="unknown", group="", node_id="n4", instance_type=None
            ),
            Node(
                instance_id="i-5", role=Role.WORKER, az=C, group="wrk", node_id="n5", instance_type="c5.large"
            ),
        ),
        zones=(A, B, C),
        taken_at=NOW,
    )


def test_the_view_takes_health_and_roles_from_the_orchestrator_and_gone_instances_from_ec2() -> None:
    def inst(iid: str, **kw: object) -> InstanceInfo:
        return InstanceInfo(instance_id=iid, az=A, group="g", **kw)

    members = [
        member("n1", Role.MANAGER, instance_id="i-1"),  # healthy manager
        member("n2", Role.WORKER, in_raft=True, instance_id="i-2"),  # demotion not yet effective: a voter
        member("n3", Role.MANAGER, in_raft=False, instance_id="i-3"),  # a manager out of Raft still counts
        member("n4", instance_id="i-4", ready=False),  # Down
        member("n5", Role.MANAGER, instance_id="i-5", reachable=False),  # Unreachable
        member("n6", instance_id="i-6", available=False),  # drained
        member("n7", instance_id="i-7"),  # its instance is terminated: neither healthy nor reachable
        member("n8", Role.MANAGER, instance_id="i-8"),  # terminating: still healthy, no longer reachable
        member("n9", instance_id="i-9"),  # shutting down
        member("n10", instance_id="i-10"),  # unknown to EC2: as the orchestrator says
    ]
    instances = {
        "i-1": inst("i-1", lifecycle_state="InService"),
        "i-2": inst("i-2"),
        "i-3": inst("i-3"),
        "i-4": inst("i-4"),
        "i-5": inst("i-5"),
        "i-6": inst("i-6"),
        "i-7": inst("i-7", state="terminated", lifecycle_state="InService"),
        "i-8": inst("i-8", lifecycle_state="Terminating:Wait"),
        "i-9": inst("i-9", state="shutting-down"),
    }
    view = build_view("demo", members, instances, [A], NOW)
    health = [(n.instance_id, n.role, n.healthy, n.reachable, n.available) for n in view.nodes]
    assert health == [
        ("i-1", Role.MANAGER, True, True, True),
        ("i-2", Role.MANAGER, True, True, True),
        ("i-3", Role.MANAGER, True, True, True),
        ("i-4", Role.WORKER, False, True, True),
        ("i-5", Role.MANAGER, False, False, True),
        ("i-6", Role.WORKER, True, True, False),
        ("i-7", Role.WORKER, False, False, True),
        ("i-8", Role.MANAGER, True, False, True),
        ("i-9", Role.WORKER, False, False, True),
        ("i-10", Role.WORKER, True, True, True),
    ]
    assert all(n.group == ("" if n.instance_id == "i-10" else "g") for n in view.nodes)


def test_the_report_as_a_dict_has_every_field() -> None:
    step = RebalanceStep(
        kind=StepKind.RETIRE,
        reason="3-2-1 -> 2-2-1",
        az=A,
        instance_id="i-9",
        target=5,
        goal={A: 2, B: 2, C: 1},
        plan=("retire from us-east-1a -> 2-2-1 (tolerates 1)", "then done"),
    )
    joined = LaunchDecision(Outcome.JOINED, "joined as worker", "i-7", Role.WORKER, B, node_id="n7")
    report = ReconcileReport(
        "demo",
        True,
        has_leader=True,
        voters=6,
        healthy_managers=5,
        quorum_margin=2,
        zone_failures_tolerated=1,
        best_zone_failures=3,
        leader_az=B,
        pending_joins=4,
        target=7,
        layout={A: 3, B: 2, C: 1},
        impaired=(C,),
        retained=("i-r1", "i-r2"),
        step=step,
        actions=("would retire i-9", "would relabel i-2"),
        joined=(joined,),
        error="Unreachable",
    )
    assert report.to_dict() == {
        "cluster": "demo",
        "dry_run": True,
        "has_leader": True,
        "voters": 6,
        "healthy_managers": 5,
        "quorum_margin": 2,
        "zone_failures_tolerated": 1,
        "best_zone_failures": 3,
        "leader_az": B,
        "pending_joins": 4,
        "target": 7,
        "layout": {A: 3, B: 2, C: 1},
        "impaired": [C],
        "retained": ["i-r1", "i-r2"],
        "step": "retire i-9 in us-east-1a: 3-2-1 -> 2-2-1",
        "plan": ["retire from us-east-1a -> 2-2-1 (tolerates 1)", "then done"],
        "actions": ["would retire i-9", "would relabel i-2"],
        "joined": [joined.to_dict()],
        "error": "Unreachable",
    }
    assert report.to_dict()["joined"] == [
        {
            "outcome": "joined",
            "reason": "joined as worker",
            "instance_id": "i-7",
            "role": "worker",
            "az": B,
            "result": None,
            "completion": None,
            "node_id": "n7",
            "error": None,
            "also_joined": [],
        }
    ]


def test_a_report_without_a_step_has_no_plan() -> None:
    report = ReconcileReport("demo", False, has_leader=False)
    assert report.to_dict() == {
        "cluster": "demo",
        "dry_run": False,
        "has_leader": False,
        "voters": 0,
        "healthy_managers": 0,
        "quorum_margin": 0,
        "zone_failures_tolerated": 0,
        "best_zone_failures": 0,
        "leader_az": None,
        "pending_joins": 0,
        "target": 0,
        "layout": {},
        "impaired": [],
        "retained": [],
        "step": None,
        "plan": [],
        "actions": [],
        "joined": [],
        "error": None,
    }
