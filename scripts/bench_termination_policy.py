"""Benchmark: the termination policy's decision for 30,000 offered instances, as a ratio to parsing that
input (``json.loads`` of the event Auto Scaling sends). AWS gives the function 2 seconds.

    .venv/bin/python scripts/bench_termination_policy.py [--instances 30000] [--repeat 5] [--json OUT]

What is timed (best of --repeat, one process):
  parse     json.loads of the input text (what the Lambda runtime does before the handler runs)
  decide    parse_policy_input + TerminationPolicyService.decide: validating every offered entry, the one
            snapshot read (the stored JSON text validated into a ClusterView, as DynamoStateStore does;
            a cluster of 5 managers and N workers is stored summarised, as the adapter stores it), and
            the decision itself
for the worker group (N workers offered, 1,000 to terminate, 100 drained ones listed in the snapshot)
and for the manager group (5 managers among N offered ids). No timed assertion anywhere: this prints.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from autojoin.adapters.aws.state import SNAPSHOT_BUDGET
from autojoin.domain.model import ClusterView, Node, Role
from autojoin.ports import StateStore
from autojoin.services.termination_policy import PolicyConfig, TerminationPolicyService, parse_policy_input

ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ARN_PREFIX = "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:00000000-0000-4000-8000-0000"


class StoredState:
    """Keeps the snapshot as the JSON text DynamoStateStore writes, and parses it on every read (the only
    StateStore method the policy calls)."""

    text: str = ""

    def save_snapshot(self, view: ClusterView) -> None:
        text = view.model_dump_json()
        self.text = text if len(text) <= SNAPSHOT_BUDGET else view.summarised().model_dump_json()

    def snapshot(self, cluster: str) -> ClusterView | None:
        return ClusterView.model_validate_json(self.text) if self.text else None


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    args = ap.parse_args()
    n = args.instances

    workers = [f"i-{k:017x}" for k in range(1, n + 1)]
    managers = [f"i-{0xF0000 + k:017x}" for k in range(5)]
    nodes = [
        Node(instance_id=m, role=Role.MANAGER, az=ZONES[k % 3], node_id=f"m{k}")
        for k, m in enumerate(managers)
    ]
    nodes += [
        Node(instance_id=w, role=Role.WORKER, az=ZONES[k % 3], node_id=f"w{k}", available=k % 300 != 0)
        for k, w in enumerate(workers)
    ]
    state = StoredState()
    state.save_snapshot(ClusterView(cluster="demo", nodes=tuple(nodes), zones=ZONES, taken_at=NOW))
    svc = TerminationPolicyService(
        PolicyConfig(cluster="demo", manager_group="demo-manager", worker_group="demo-worker"),
        state=cast(StateStore, state),
        now=lambda: NOW,
    )

    def event(group: str, ids: list[str], capacity: int) -> str:
        per = capacity // 3
        return json.dumps(
            {
                "AutoScalingGroupARN": f"{ARN_PREFIX}:autoScalingGroupName/{group}",
                "AutoScalingGroupName": group,
                "CapacityToTerminate": [
                    {"AvailabilityZone": z, "Capacity": per, "InstanceMarketOption": "on-demand"}
                    for z in ZONES
                ],
                "Instances": [
                    {
                        "AvailabilityZone": ZONES[k % 3],
                        "InstanceId": iid,
                        "InstanceType": "t4g.small",
                        "InstanceMarketOption": "on-demand",
                    }
                    for k, iid in enumerate(ids)
                ],
                "Cause": "SCALE_IN",
                "HasMoreInstances": False,
            }
        )

    cases = {
        "worker group": event("demo-worker", workers, 1000),
        "manager group": event("demo-manager", managers + workers[: n - 5], 3),
    }
    print(f"snapshot item: {len(state.text):,} bytes (budget {SNAPSHOT_BUDGET:,}); offered per input: {n:,}")
    out: dict[str, object] = {
        "instances": n,
        "repeat": args.repeat,
        "snapshot_bytes": len(state.text),
        "aws_budget_ms": 2000,
        "cases": {},
    }
    for name, text in cases.items():
        parsed = json.loads(text)
        t_parse = best(lambda text=text: json.loads(text), args.repeat)
        t_decide = best(lambda parsed=parsed: svc.decide(parse_policy_input(parsed)), args.repeat)
        decision = svc.decide(parse_policy_input(parsed))
        print(
            f"{name:14s} input {len(text) / 1e6:5.2f} MB | parse {t_parse * 1000:7.1f} ms | decide "
            f"{t_decide * 1000:7.1f} ms | decide/parse {t_decide / t_parse:5.2f} | allowed "
            f"{len(decision.instance_ids)} | AWS budget 2000 ms"
        )
        cast(dict[str, object], out["cases"])[name] = {
            "input_bytes": len(text),
            "parse_ms": t_parse * 1000,
            "decide_ms": t_decide * 1000,
            "ratio": t_decide / t_parse,
            "allowed": len(decision.instance_ids),
        }
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
