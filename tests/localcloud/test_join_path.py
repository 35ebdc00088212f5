"""Issue 4 on the local cloud: the real template, the real handlers, the real boto3 adapters against moto
plus the lifecycle extension, and the SimSwarm for the cluster."""

from __future__ import annotations

import io
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from autojoin.domain.model import Role
from autojoin.localcloud import LocalCloud
from autojoin.localcloud.cloud import LambdaContext
from autojoin.observability import logger

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
TOKEN = re.compile(r"SWMTKN-1-[0-9a-z]+-[0-9a-z]+")


@dataclass
class Capture:
    """Everything the scenario lets out, unredacted: logs (DEBUG), raw AWS request params, results,
    exception texts. The local cloud's own records are redacted; this is what the test checks instead."""

    logs: io.StringIO = field(default_factory=io.StringIO)
    params: list[tuple[str, str, str | None, dict[str, Any]]] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def cloud() -> Iterator[tuple[LocalCloud, Capture]]:
    cap = Capture()
    handler = logging.StreamHandler(cap.logs)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    logger.setLevel("DEBUG")
    with LocalCloud(template=TEMPLATE, seed=7) as lc:
        lc.provision(cluster="demo")

        def raw(**kw: Any) -> None:
            model = kw["model"]
            cap.params.append(
                (
                    model.service_model.service_name,
                    model.name,
                    lc._running[-1] if lc._running else None,
                    json.loads(json.dumps(kw["params"], default=str)),
                )
            )

        lc.session._session.register("provide-client-params", raw)
        for fn in ("OnLaunchFunction", "RotateTokensFunction"):
            lc.register_handler(fn, _capturing(lc._handler(fn), cap))
        yield lc, cap
    logging.getLogger(logger.name).removeHandler(handler)  # the std logger powertools wraps
    logger.setLevel("INFO")


def _capturing(real: Callable[..., Any], cap: Capture) -> Callable[..., Any]:
    def handler(event: Any, context: Any, deps: Any) -> Any:
        try:
            result = real(event, context, deps=deps)
        except Exception as exc:
            cap.errors.append(f"{type(exc).__name__}: {exc}")
            raise
        cap.results.append(result)
        return result

    return handler


def all_tokens(lc: LocalCloud) -> set[str]:
    """Every token value any version of either secret ever held (read outside the recorded session)."""
    sm = boto3.client("secretsmanager", region_name=lc.region)
    out: set[str] = set()
    for lid in ("ManagerTokenSecret", "WorkerTokenSecret"):
        arn = lc.stack.physical[lid]["Ref"]
        for v in sm.list_secret_version_ids(SecretId=arn, IncludeDeprecated=True)["Versions"]:
            out.add(sm.get_secret_value(SecretId=arn, VersionId=v["VersionId"])["SecretString"])
    return out


def members(lc: LocalCloud) -> list[Any]:
    return list(lc.swarm.members())


def grow(lc: LocalCloud) -> None:
    stack = lc.stack
    lc.set_desired(stack.manager_group, 2)  # two managers launched at the same moment
    lc.run_until_idle(1800)
    lc.set_desired(stack.manager_group, 3)
    lc.set_desired(stack.worker_group, 5)
    lc.run_until_idle(1800)


def test_cluster_grows_from_nothing_to_3_managers_and_5_workers(cloud: tuple[LocalCloud, Capture]) -> None:
    lc, cap = cloud
    grow(lc)
    ms = members(lc)
    assert sorted(m.role.value for m in ms) == ["manager"] * 3 + ["worker"] * 5
    assert lc.swarm.has_leader() and all(m.ready for m in ms)
    # one cluster: every instance of both groups is a member of this one swarm, with the right role
    for group, role in ((lc.stack.manager_group, Role.MANAGER), (lc.stack.worker_group, Role.WORKER)):
        for inst in lc.instances(group):
            m = next(x for x in ms if x.labels.get("instance-id") == inst.instance_id)
            assert m.role is role
            assert m.labels == {
                "az": inst.az,
                "instance-id": inst.instance_id,
                "asg": group,
                "instance-type": inst.instance_type,
            }
            assert inst.lifecycle_state == "InService"
    assert {m.labels["az"] for m in ms if m.role is Role.MANAGER} == set(lc.zones)  # 1-1-1
    results = Counter(r.result for r in lc.lifecycle_results)
    assert results == Counter({"CONTINUE": 8})
    assert len({r.instance_id for r in lc.lifecycle_results}) == 8  # exactly once each
    outcomes = Counter(r["outcome"] for r in cap.results)
    assert outcomes["bootstrapped"] == 1  # one cluster, one init
    # each token read from Secrets Manager at most once by the warm on_launch function
    reads = Counter(
        p["SecretId"]
        for svc, op, fn, p in cap.params
        if (svc, op, fn) == ("secretsmanager", "GetSecretValue", "OnLaunchFunction")
    )
    assert reads and all(n == 1 for n in reads.values()), reads


def test_no_token_leaks_anywhere(
    cloud: tuple[LocalCloud, Capture], capfd: pytest.CaptureFixture[str]
) -> None:
    lc, cap = cloud
    grow(lc)
    lc.rotate_secret("WorkerTokenSecret")
    lc.set_desired(lc.stack.worker_group, 7)
    lc.run_until_idle(1800)
    tokens = all_tokens(lc)
    assert len(tokens) >= 3  # manager, worker, rotated worker
    out = capfd.readouterr()
    assert '"level":"DEBUG"' in cap.logs.getvalue().replace(" ", "")
    surfaces = {
        "logs": cap.logs.getvalue(),
        "stdout/stderr (EMF metrics, prints)": out.out + out.err,
        "events": json.dumps(lc.events, default=str),
        "return values": json.dumps(cap.results, default=str),
        "exceptions": "\n".join(cap.errors),
        "failure destination": json.dumps(lc.failures, default=str),
    }
    # AWS request parameters: the only two places a token may travel are the read-once hand-off row
    # (DynamoDB PutItem Item.token into the hand-off table) and the node's own PutSecretValue.
    handoff_table = lc.stack.physical["HandoffTable"]["Ref"]
    carriers = 0
    other_params = []
    for svc, op, fn, raw_params in cap.params:
        p = dict(raw_params)
        if (svc, op) == ("dynamodb", "PutItem") and p.get("TableName") == handoff_table:
            assert fn == "OnLaunchFunction"
            p["Item"] = {k: v for k, v in p["Item"].items() if k != "token"}
            carriers += 1
        elif (svc, op) == ("secretsmanager", "PutSecretValue"):
            assert fn is not None and fn.startswith("node")  # only a manager node writes tokens
            p.pop("SecretString")
            carriers += 1
        elif svc == "ssm":
            assert "Parameters" not in p or not TOKEN.search(json.dumps(p["Parameters"]))
        other_params.append(p)
    assert carriers > 0  # the carriers were really seen, and stripped field by field only
    surfaces["AWS request parameters"] = json.dumps(other_params, default=str)
    for name, text in surfaces.items():
        assert not any(t in text for t in tokens), f"a join token leaked into {name}"
        assert not TOKEN.search(text), f"something token-shaped leaked into {name}"


def test_a_worker_is_only_ever_offered_the_worker_token(cloud: tuple[LocalCloud, Capture]) -> None:
    lc, cap = cloud
    grow(lc)
    manager_token = lc.session.client("secretsmanager").get_secret_value(
        SecretId=lc.stack.physical["ManagerTokenSecret"]["Ref"]
    )["SecretString"]
    handoff_table = lc.stack.physical["HandoffTable"]["Ref"]
    workers = {i.instance_id for i in lc.instances(lc.stack.worker_group)}
    offers = [
        p["Item"]
        for svc, op, _fn, p in cap.params
        if (svc, op) == ("dynamodb", "PutItem") and p.get("TableName") == handoff_table
    ]
    to_workers = [o for o in offers if o["principal"]["S"].split(":")[-1] in workers]
    assert len(to_workers) == 5
    assert all(o["role"]["S"] == "worker" and o["token"]["S"] != manager_token for o in to_workers)
    worker_role_id = lc.stack.physical["WorkerInstanceRole"]["RoleId"]
    assert all(o["principal"]["S"].startswith(worker_role_id + ":") for o in to_workers)
    assert lc.session.client("dynamodb").scan(TableName=handoff_table)["Count"] == 0  # nothing left behind


def test_rotation_in_the_middle_of_a_burst(cloud: tuple[LocalCloud, Capture]) -> None:
    lc, cap = cloud
    lc.set_desired(lc.stack.manager_group, 3)
    lc.run_until_idle(1800)
    old = lc.session.client("secretsmanager").get_secret_value(
        SecretId=lc.stack.physical["WorkerTokenSecret"]["Ref"]
    )["SecretString"]
    launch = lc._handlers["OnLaunchFunction"]
    seen = {"n": 0}

    def rotate_midway(event: Any, context: Any, deps: Any) -> Any:
        seen["n"] += 1
        if seen["n"] == 4:  # after three workers joined with the cached old token
            lc.rotate_secret("WorkerTokenSecret")
        return launch(event, context, deps=deps)

    lc.register_handler("OnLaunchFunction", rotate_midway)
    lc.set_desired(lc.stack.worker_group, 8)
    lc.run_until_idle(1800)
    assert seen["n"] >= 8
    assert Counter(r.result for r in lc.lifecycle_results) == Counter({"CONTINUE": 11})
    assert sorted(m.role.value for m in members(lc)).count("worker") == 8
    assert lc.swarm.valid_token(old) is None  # the old token no longer joins
    new = lc.session.client("secretsmanager").get_secret_value(
        SecretId=lc.stack.physical["WorkerTokenSecret"]["Ref"], VersionStage="AWSCURRENT"
    )["SecretString"]  # VersionStage explicit: moto keeps serving its old default version otherwise
    assert new != old and lc.swarm.valid_token(new) is Role.WORKER
    joined = [r for r in cap.results if r.get("outcome") == "joined" and r["role"] == "worker"]
    assert len(joined) == 8


def test_bad_inputs_get_the_safe_result(cloud: tuple[LocalCloud, Capture]) -> None:
    lc, _ = cloud
    lc.set_desired(lc.stack.manager_group, 1)
    lc.run_until_idle(1800)
    assert lc.invoke("OnLaunchFunction", {"detail": "garbage"})["outcome"] == "rejected"
    # instance already gone: a late event is a no-op
    late = json.loads((ROOT / "events" / "autoscaling_launch_worker.json").read_text())
    late["detail"]["AutoScalingGroupName"] = lc.stack.worker_group
    late["detail"]["EC2InstanceId"] = "i-0000000000000dead"
    assert lc.invoke("OnLaunchFunction", late)["outcome"] == "gone"
    # secret missing / orchestrator unreachable: hold the launch events (a recorder stays registered, so the
    # replacements an ABANDON causes are only recorded), and run the real handler on each held event
    real = lc._handlers["OnLaunchFunction"]
    held: list[dict[str, Any]] = []
    lc.register_handler("OnLaunchFunction", lambda event, context: held.append(event))
    lc.set_desired(lc.stack.worker_group, 2)
    lc.run_until_idle(1)
    assert len(held) == 2
    deps = lc.deps_for("OnLaunchFunction")
    sm = boto3.client("secretsmanager", region_name=lc.region)
    sm.delete_secret(SecretId=lc.stack.physical["WorkerTokenSecret"]["Ref"], ForceDeleteWithoutRecovery=True)
    deps.vault._provider.clear_cache()  # a cold function: the token is not cached any more
    ctx = LambdaContext(function_name="on_launch", invoked_function_arn="arn", aws_request_id="r")
    missing = real(held[0], ctx, deps=deps)
    assert (missing["outcome"], missing["result"], missing["error"]) == (
        "abandoned",
        "ABANDON",
        "SecretMissing",
    )
    for inst in lc.instances(lc.stack.manager_group):
        lc.swarm.crash(inst.instance_id)
    lc.advance(30)
    down = real(held[1], ctx, deps=deps)  # answered, not raised: no retry loop; the hook is kept alive
    assert (down["outcome"], down["result"], down["error"]) == ("pending", None, "Unreachable")
    results = {r.instance_id: r.result for r in lc.lifecycle_results}
    assert results[held[0]["detail"]["EC2InstanceId"]] == "ABANDON"
    assert held[1]["detail"]["EC2InstanceId"] not in results
    pending = [
        i for i in lc.instances(lc.stack.worker_group) if i.instance_id == held[1]["detail"]["EC2InstanceId"]
    ]
    assert pending and pending[0].lifecycle_state == "Pending:Wait"
