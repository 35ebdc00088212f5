"""Issue 11 on the local cloud: the stack provisioned from nothing survives Secrets Manager's testSecret, and
a half-finished rotation (the node's put fails) no longer strands the joins after it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from autojoin.domain.model import Role
from autojoin.localcloud import LocalCloud
from autojoin.node import agent

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture
def lc() -> Iterator[LocalCloud]:
    with LocalCloud(template=TEMPLATE, seed=11) as cloud:
        yield cloud


def test_the_stack_provisions_from_nothing_and_every_rotation_step_succeeds_without_a_cluster(
    lc: LocalCloud,
) -> None:
    # provisioning runs testSecret for both schedules, as Secrets Manager does when a schedule is created
    lc.provision(cluster="fresh")
    sm = lc.session.client("secretsmanager")
    for lid in ("ManagerTokenSecret", "WorkerTokenSecret"):
        # no cluster, no token: every step succeeds and nothing is written
        lc.rotate_secret(lid)
        arn = lc.stack.physical[lid]["Ref"]
        assert sm.list_secret_version_ids(SecretId=arn)["Versions"] == []
    rotations = [i for i in lc.invocations if i.function == "RotateTokensFunction"]
    assert len(rotations) == 8 and all(i.outcome == "ok" for i in rotations)
    # and the cluster still forms afterwards, with tokens stored by its first manager
    lc.set_desired(lc.stack.manager_group, 1)
    lc.set_desired(lc.stack.worker_group, 1)
    lc.run_until_idle(1800)
    assert Counter(r.result for r in lc.lifecycle_results) == Counter({"CONTINUE": 2})


def test_a_rotation_whose_put_fails_does_not_strand_the_joins_after_it(
    lc: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    lc.provision(cluster="demo")
    lc.set_desired(lc.stack.manager_group, 1)
    lc.set_desired(lc.stack.worker_group, 2)
    lc.run_until_idle(1800)
    monkeypatch.setattr(agent, "PUT_RETRY_DELAYS", (0.0, 0.0, 0.0))
    failures = {"left": 2}

    def flaky_pending_put(**kw: Any) -> None:  # botocore passes every event argument by keyword
        if kw["params"].get("VersionStages") == ["AWSPENDING"] and failures["left"]:
            failures["left"] -= 1
            raise ClientError({"Error": {"Code": "InternalServiceError", "Message": "x"}}, "PutSecretValue")

    lc.session._session.register("provide-client-params.secrets-manager.PutSecretValue", flaky_pending_put)
    lc.rotate_secret("WorkerTokenSecret")  # the swarm rotates, the node's first puts fail
    assert failures["left"] == 0
    lc.set_desired(lc.stack.worker_group, 4)
    lc.run_until_idle(1800)
    results = Counter(r.result for r in lc.lifecycle_results)
    assert results == Counter({"CONTINUE": 5}), results  # no ABANDON at all
    assert sorted(m.role.value for m in lc.swarm.members()).count("worker") == 4
    current = lc.session.client("secretsmanager").get_secret_value(
        SecretId=lc.stack.physical["WorkerTokenSecret"]["Ref"], VersionStage="AWSCURRENT"
    )["SecretString"]
    assert lc.swarm.valid_token(current) is Role.WORKER
