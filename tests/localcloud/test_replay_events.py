"""Every shipped event replays (exit 0) with the decision the event implies, through the real CLI.

What an event implies depends on what template.yaml wires: a terminate lifecycle action reaches
OnTerminateFunction once the template has it, and is an honest "ignored: no rule matches" before. Each
expectation below reads the template to know which case applies, and asserts that case exactly.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autojoin.cli.main import app

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
EVENTS = REPO / "events"
runner = CliRunner()


@cache
def template_functions() -> frozenset[str]:
    from samtranslator.yaml_helper import yaml_parse

    doc = yaml_parse(TEMPLATE.read_text())
    return frozenset(
        lid
        for lid, res in doc["Resources"].items()
        if res.get("Type") in {"AWS::Serverless::Function", "AWS::Lambda::Function"}
    )


def replay(name: str, *extra: str) -> dict[str, Any]:
    result = runner.invoke(
        app, ["replay", str(EVENTS / f"{name}.json"), "--json", "--template", str(TEMPLATE), *extra]
    )
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.stdout[-2000:])
    assert "SWMTKN" not in result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    assert doc["violations"] == []
    return doc


def decided_by(doc: dict[str, Any], function: str, *, then: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A wired handler's decision: ``function`` ran first, without error, and decided (an outcome; the
    reconciler reports its pass instead); after it only ``then`` ran (what its decision caused)."""
    d = doc["decision"]
    assert isinstance(d, dict), d
    if function == "ReconcileFunction":
        assert d.get("cluster") == "demo" and isinstance(d.get("dry_run"), bool), d
    else:
        assert isinstance(d.get("outcome"), str) and d["outcome"], d
    ran = [(i["function"], i["error_type"]) for i in doc["invocations"]]
    assert ran and ran[0] == (function, None), ran
    assert all(fn in then | {function} and error is None for fn, error in ran[1:]), ran
    return d


def completions(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(r["instance_id"], r["result"], r["by"]) for r in doc["lifecycle"]]


def test_launch_manager_joins_the_new_manager_and_continues_once() -> None:
    doc = replay("autoscaling_launch_manager")
    d = doc["decision"]
    assert (d["outcome"], d["role"], d["instance_id"], d["result"]) == (
        "joined",
        "manager",
        "i-00000000000000104",
        "CONTINUE",
    )
    assert completions(doc) == [("i-00000000000000104", "CONTINUE", "api")]
    assert doc["lifecycle"][0]["token"] == "a1b2c3d4-0001-4e5f-8a9b-00000000000a"  # the event's own token
    assert doc["lifecycle"][0]["caller"] == "OnLaunchFunction"
    cluster = doc["cluster"]
    assert cluster["has_leader"] and cluster["managers"] == 4 and cluster["workers"] == 2
    assert sum(cluster["layout"].values()) == 4
    assert cluster["tolerance"]["managers"] == 4
    ops = [(c["function"], c["operation"]) for c in doc["calls"]]
    assert ("OnLaunchFunction", "CompleteLifecycleAction") in ops
    # the manager token went to the new manager's own hand-off slot, redacted in the record
    puts = [
        c for c in doc["calls"] if c["operation"] == "PutItem" and "HandoffTable" in c["params"]["TableName"]
    ]
    assert len(puts) == 1
    assert puts[0]["params"]["Item"]["principal"]["S"].endswith(":i-00000000000000104")
    assert puts[0]["params"]["Item"]["token"] == "***"


@pytest.mark.parametrize("name", ["autoscaling_launch_worker", "autoscaling_launch_from_warmpool"])
def test_launch_worker_joins_as_worker(name: str) -> None:
    doc = replay(name)
    d = doc["decision"]
    assert (d["outcome"], d["role"], d["result"]) == ("joined", "worker", "CONTINUE")
    assert completions(doc) == [(d["instance_id"], "CONTINUE", "api")]
    assert doc["cluster"]["workers"] == 3 and doc["cluster"]["managers"] == 3
    # a worker is handed the worker token: the manager secret is never read for it
    secrets = [c["params"]["SecretId"] for c in doc["calls"] if c["operation"] == "GetSecretValue"]
    assert secrets and all(s.endswith("worker-token-Ef34Gh") for s in secrets)


def test_launch_into_the_warm_pool_is_not_a_join() -> None:
    doc = replay("autoscaling_launch_worker_warmpool")
    d = doc["decision"]
    assert (d["outcome"], d["result"]) == ("warm_pool", "CONTINUE")
    assert completions(doc) == [("i-00000000000000204", "CONTINUE", "api")]
    assert doc["cluster"]["workers"] == 2  # not in the swarm
    assert not any(c["operation"] == "GetSecretValue" for c in doc["calls"])


def test_a_group_of_another_cluster_is_ignored() -> None:
    doc = replay("autoscaling_launch_unknown_group")
    assert doc["decision"].startswith("ignored: ")
    assert "legacy-web-asg" in doc["decision"]
    assert doc["calls"] == [] and doc["lifecycle"] == [] and doc["invocations"] == []


def test_test_notification_reaches_the_lifecycle_handler_and_completes_nothing() -> None:
    doc = replay("autoscaling_test_notification")
    assert doc["decision"]["outcome"] == "ignored"
    assert "test notification" in doc["decision"]["reason"]
    assert doc["lifecycle"] == []
    assert [i["function"] for i in doc["invocations"]] == ["OnLaunchFunction"]


@pytest.mark.parametrize(
    "name",
    ["autoscaling_terminate_manager", "autoscaling_terminate_worker", "autoscaling_terminate_to_warmpool"],
)
def test_terminate_lifecycle_actions(name: str) -> None:
    doc = replay(name)
    if "OnTerminateFunction" in template_functions():
        decided_by(doc, "OnTerminateFunction", then=frozenset({"ReconcileFunction", "OnLaunchFunction"}))
        ran = [i["function"] for i in doc["invocations"]]
        assert ran[0] == "OnTerminateFunction"
        # what follows is what the terminate caused: the reconciler hearing the results, and the launch of
        # a replacement where the group lost capacity (the template's rules route both)
        assert set(ran[1:]) <= {"ReconcileFunction", "OnLaunchFunction"}, ran
        expected = {
            "autoscaling_terminate_manager": "waiting",  # 1 of 3 managers: below the floor until replaced
            "autoscaling_terminate_worker": "removed",
            "autoscaling_terminate_to_warmpool": "warm_pool",
        }[name]
        assert doc["decision"]["outcome"] == expected, doc["decision"]
    else:
        assert doc["decision"] == (
            "ignored: no rule in template.yaml matches "
            "aws.autoscaling / EC2 Instance-terminate Lifecycle Action"
        )
        assert doc["invocations"] == [] and doc["lifecycle"] == []
        assert doc["cluster"]["managers"] == 3 and doc["cluster"]["workers"] == 2


@pytest.mark.parametrize(
    "name",
    [
        "autoscaling_launch_successful",
        "autoscaling_launch_unsuccessful",
        "autoscaling_terminate_successful",
        "autoscaling_terminate_unsuccessful",
    ],
)
def test_launch_and_terminate_results(name: str) -> None:
    doc = replay(name)
    if "ReconcileFunction" in template_functions():
        decided_by(doc, "ReconcileFunction")
    else:
        assert doc["decision"].startswith(
            "ignored: no rule in template.yaml matches aws.autoscaling / EC2 Instance "
        )
        assert doc["invocations"] == []


def test_scheduled_reconcile() -> None:
    doc = replay("scheduled_reconcile")
    if "ReconcileFunction" in template_functions():
        decided_by(doc, "ReconcileFunction")
        assert [i["function"] for i in doc["invocations"]] == ["ReconcileFunction"]
    elif "OnTerminateFunction" in template_functions():
        # the guard's schedule is the template's only schedule rule: replay delivers to it
        assert isinstance(doc["decision"], dict), doc["decision"]
        assert [i["function"] for i in doc["invocations"]] == ["OnTerminateFunction"]
    else:
        assert doc["decision"].startswith("ignored: no rule in template.yaml matches aws.events")
        assert "no schedule rule" in doc["decision"]


def test_scheduled_guard_pass_runs_on_terminate_and_changes_nothing_in_a_healthy_cluster() -> None:
    doc = replay("scheduled_guard")
    d = doc["decision"]
    assert [i["function"] for i in doc["invocations"]] == ["OnTerminateFunction"]
    assert d["released"] is None and d["blocked"] is None and d["dead"] == [] and d["resumed"] == []
    assert d["margin"] == 1  # 3 healthy managers, quorum 2
    assert doc["lifecycle"] == [] and doc["cluster"]["managers"] == 3


def test_another_teams_terminate_hook_reaches_no_autojoin_function() -> None:
    doc = replay("autoscaling_terminate_other_hook")
    assert doc["decision"] == (
        "ignored: no rule in template.yaml matches aws.autoscaling / EC2 Instance-terminate Lifecycle Action"
    )
    assert doc["invocations"] == [] and doc["lifecycle"] == []


@pytest.mark.parametrize(
    "name",
    [
        "termination_policy_scale_in",
        "termination_policy_instance_refresh",
        "termination_policy_max_instance_lifetime",
        "termination_policy_rebalance",
    ],
)
def test_termination_policy_inputs(name: str) -> None:
    doc = replay(name)
    given = json.loads((EVENTS / f"{name}.json").read_text())
    if "TerminationPolicyFunction" in template_functions():
        answer = doc["decision"]["InstanceIDs"]
        assert isinstance(answer, list)
        assert set(answer) <= {i["InstanceId"] for i in given["Instances"]}  # only instances it was offered
        assert [i["function"] for i in doc["invocations"]] == ["TerminationPolicyFunction"]
        if given["AutoScalingGroupName"] == "demo-manager":
            assert answer == []  # the default state has 3 managers: the floor (MinManagers 3)
    else:
        assert doc["decision"].startswith("ignored: group demo-manager has no custom termination policy")
        assert "TerminationPolicyFunction" in doc["decision"]
    assert doc["lifecycle"] == []
    assert doc["cluster"]["managers"] == 3


@pytest.mark.parametrize(
    ("name", "step", "action"),
    [
        (
            "secretsmanager_rotation_create_secret",
            "createSecret",
            "rotated in the cluster; stored as AWSPENDING",
        ),
        ("secretsmanager_rotation_set_secret", "setSecret", "nothing to set"),
        ("secretsmanager_rotation_test_secret", "testSecret", "the swarm accepts the pending token"),
        ("secretsmanager_rotation_finish_secret", "finishSecret", "AWSCURRENT moved to the new version"),
    ],
)
def test_rotation_steps(name: str, step: str, action: str) -> None:
    doc = replay(name)
    assert doc["decision"]["role"] == "manager"
    assert doc["decision"]["step"] == step
    assert action in doc["decision"]["action"]
    assert [i["function"] for i in doc["invocations"]] == ["RotateTokensFunction"]
    earlier = ["createSecret", "setSecret", "testSecret", "finishSecret"]
    assert len(doc["setup"]) == earlier.index(step)  # the steps before it ran first, as Secrets Manager does
    assert doc["cluster"]["has_leader"]


def test_every_shipped_event_is_covered_here() -> None:
    covered = {
        "autoscaling_launch_manager",
        "autoscaling_launch_worker",
        "autoscaling_launch_from_warmpool",
        "autoscaling_launch_worker_warmpool",
        "autoscaling_launch_unknown_group",
        "autoscaling_test_notification",
        "autoscaling_terminate_manager",
        "autoscaling_terminate_worker",
        "autoscaling_terminate_to_warmpool",
        "autoscaling_launch_successful",
        "autoscaling_launch_unsuccessful",
        "autoscaling_terminate_successful",
        "autoscaling_terminate_unsuccessful",
        "scheduled_reconcile",
        "scheduled_guard",
        "autoscaling_terminate_other_hook",
        "termination_policy_scale_in",
        "termination_policy_instance_refresh",
        "termination_policy_max_instance_lifetime",
        "termination_policy_rebalance",
        "secretsmanager_rotation_create_secret",
        "secretsmanager_rotation_set_secret",
        "secretsmanager_rotation_test_secret",
        "secretsmanager_rotation_finish_secret",
    }
    assert {p.stem for p in EVENTS.glob("*.json")} == covered
