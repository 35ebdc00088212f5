"""Benchmark: a burst of worker launches delivered at once to a pool of concurrent on_launch instances.

The local cloud runs each template function as ONE warm execution environment and invokes it serially
(localcloud/lambdas.py: one ``Deps`` per function, events handled one after another on the SimClock). It
does not model Lambda's concurrent execution environments, so this benchmark models them itself:

1. a cluster (3 managers, 2 workers) is provisioned on the local cloud with the template's wiring;
2. the worker group is scaled out by ``--launches`` at once; Auto Scaling's launch lifecycle events are
   routed by the template's rules as usual, but OnLaunchFunction's invocations are held (the burst);
3. a pool of ``--pool`` threads, each one execution environment with its own boto3 session, its own
   composition root (``build_deps``: clients, token cache, idempotency layer) built on its first event,
   takes the held events from one queue — every environment starts cold, as Lambda's would;
4. the local cloud then runs until idle (CONTINUEs processed, launch results delivered to the
   reconciler) and the outcome is read: instances in service, workers in the swarm, CONTINUE/ABANDON
   counts, handler errors, and the GetSecretValue calls the pool made (counted by a botocore
   ``before-parameter-build`` hook on each environment's session).

The burst is run twice, side by side in one process: with the pool, then with a single environment
(``--baseline-launches`` of them, default the same number); the throughput ratio compares them (Python
threads share one interpreter lock, and the local cloud is in-process CPU work, so the pool's gain here
measures contention and correctness, not AWS's parallelism).
Each run's handling time is also given as a ratio of ``python -c 'import boto3'``. Nothing is asserted.

    python scripts/bench_pool.py [--launches 1000] [--pool 10] [--baseline-launches N] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_burst(
    launches: int, pool: int, template: Path = ROOT / "template.yaml", *, token_max_age: int | None = None
) -> dict[str, Any]:
    """One burst of ``launches`` worker launches handled by ``pool`` concurrent environments
    (``token_max_age``: the token cache's age limit instead of the template's AUTOJOIN_TOKEN_MAX_AGE)."""
    from autojoin.scenario.warmup import prepare

    prepare()  # before moto is imported
    import boto3

    from autojoin.bootstrap import build_deps
    from autojoin.localcloud import LocalCloud
    from autojoin.localcloud.cloud import _botocore_session
    from autojoin.localcloud.lambdas import LambdaContext
    from autojoin.settings import Settings

    fn = "OnLaunchFunction"
    with contextlib.redirect_stdout(io.StringIO()), LocalCloud(template, seed=0) as cloud:
        stack = cloud.provision("demo", managers=3, workers=2)
        cloud.run_until_idle(1800)
        before = len(cloud.lifecycle_results)
        real = cloud._handler(fn)
        held: list[dict[str, Any]] = []
        cloud.register_handler(fn, lambda event, context: held.append(event))
        cloud.set_desired(stack.worker_group, 2 + launches)
        for _ in range(600):  # simulated seconds until every launch's lifecycle event is held
            cloud.advance(1)
            if len(held) >= launches:
                break
        spec = stack.functions[fn]
        env = {**spec.env, "AWS_REGION": cloud.region, "AWS_LAMBDA_FUNCTION_NAME": spec.name}
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
        settings = Settings.from_env({**stack.env[fn], "AWS_REGION": cloud.region})
        if token_max_age is not None:
            settings = settings.model_copy(update={"token_max_age": token_max_age})
        work: queue.Queue[dict[str, Any]] = queue.Queue()
        for event in held:
            work.put(event)
        lock = threading.Lock()
        secret_reads: Counter[int] = Counter()
        calls: Counter[int] = Counter()
        outcomes: Counter[str] = Counter()
        errors: list[str] = []
        handled: Counter[int] = Counter()
        first_trace: list[str] = []

        def environment(k: int) -> None:
            core = _botocore_session()

            def count(model: Any, **_: Any) -> None:
                with lock:
                    calls[k] += 1
                    if model.name == "GetSecretValue":
                        secret_reads[k] += 1

            core.register("before-parameter-build", count)
            session = boto3.Session(botocore_session=core, region_name=cloud.region)
            deps = None
            while True:
                try:
                    event = work.get_nowait()
                except queue.Empty:
                    return
                ctx = LambdaContext(
                    function_name=spec.name,
                    invoked_function_arn=spec.arn,
                    aws_request_id=f"pool-{k}-{handled[k]}",
                    log_group_name=f"/aws/lambda/{spec.name}",
                )
                try:
                    if deps is None:  # the environment's init: on its first event, as Lambda's cold start
                        deps = build_deps(
                            settings, orchestrator=cloud.orchestrator, clock=cloud.clock, session=session
                        )
                    result = real(event, ctx, deps=deps)
                    with lock:
                        handled[k] += 1
                        outcomes[str(result.get("outcome") if isinstance(result, dict) else result)] += 1
                        done = sum(handled.values())
                        if done % 100 == 0:
                            print(f"bench_pool: {done}/{len(held)} handled", file=sys.stderr, flush=True)
                except Exception as exc:  # a handler error: what Lambda reports (counted, never hidden)
                    with lock:
                        handled[k] += 1
                        errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                        if len(errors) == 1:  # where the first one came from, for the report
                            first_trace.append(traceback.format_exc(limit=-8))

        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        cloud._running.append(fn)  # what the engine records as the caller of CompleteLifecycleAction
        threads = [threading.Thread(target=environment, args=(k,)) for k in range(pool)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        handling = time.perf_counter() - t0
        cloud._running.pop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        # What follows the burst is not the burst: every launch result also reaches the reconciler, which
        # reads the whole (by now 1,000-instance) group each time: real work, measured per event by
        # bench_calls, and what kept an earlier 1,000-launch run from finishing. Its rules are switched off
        # before the local cloud settles the completions (instances going InService); the report says so.
        off = [
            r.logical_id
            for r in cloud.stack.rules
            if r.enabled and any(t.function == "ReconcileFunction" for t in r.targets)
        ]
        for rule in cloud.stack.rules:
            if rule.logical_id in off:
                rule.enabled = False
        t1 = time.perf_counter()
        cloud.run_until_idle(3600)
        settle = time.perf_counter() - t1
        results = Counter(r.result for r in cloud.lifecycle_results[before:])
        in_service = [i for i in cloud.instances(stack.worker_group) if i.lifecycle_state == "InService"]
        workers = [m for m in cloud.orchestrator.members() if m.role.value == "worker"]
    return {
        "launches": launches,
        "pool": pool,
        "events_delivered": len(held),
        "handled": sum(handled.values()),
        "per_environment": [handled[k] for k in range(pool)],
        "outcomes": dict(outcomes),
        "errors": len(errors),
        "error_samples": errors[:5],
        "first_error_trace": first_trace[0] if first_trace else None,
        "lifecycle": dict(results),
        "workers_in_service": len(in_service),
        "workers_in_swarm": len(workers),
        "all_joined": len(workers) == 2 + launches and results.get("CONTINUE", 0) == launches,
        "get_secret_value_calls": sum(secret_reads.values()),
        # the token cache's age limit (Settings.token_max_age, Powertools' max_age, real seconds): a burst
        # that takes longer than it here reads each environment's token once per period
        "token_max_age_s": settings.token_max_age,
        "get_secret_value_per_environment": [secret_reads[k] for k in range(pool)],
        "aws_calls": sum(calls.values()),
        "handling_s": handling,
        "settle_s": settle,
        "rules_off_after_burst": off,
        "launches_per_s": launches / handling if handling else None,
    }


def _boto3_seconds() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import boto3"], check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launches", type=int, default=1000)
    ap.add_argument("--pool", type=int, default=10, help="concurrent execution environments")
    ap.add_argument("--baseline-launches", type=int, help="the single environment's burst (default: same)")
    ap.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    ap.add_argument(
        "--token-max-age",
        type=int,
        metavar="S",
        help="the token cache's age limit in seconds (default: the template's AUTOJOIN_TOKEN_MAX_AGE, 300); "
        "GetSecretValue is once per environment per period, and the local burst outlasts 300 s",
    )
    args = ap.parse_args()
    baseline = _boto3_seconds()
    pooled = run_burst(args.launches, args.pool, token_max_age=args.token_max_age)
    single = run_burst(args.baseline_launches or args.launches, 1, token_max_age=args.token_max_age)
    doc = {
        "pool": pooled,
        "single": single,
        "boto3_import_s": baseline,
        "throughput_ratio_pool_vs_single": (
            pooled["launches_per_s"] / single["launches_per_s"]
            if pooled["launches_per_s"] and single["launches_per_s"]
            else None
        ),
        "handling_ratio_to_boto3": {
            "pool": pooled["handling_s"] / baseline,
            "single": single["handling_s"] / baseline,
        },
    }
    for name, r in (("pool", pooled), ("single", single)):
        print(
            f"{name:6} {r['pool']:3} env(s): {r['handled']}/{r['launches']} handled, errors {r['errors']}, "
            f"joined {r['workers_in_swarm'] - 2}, lifecycle {r['lifecycle']}, GetSecretValue "
            f"{r['get_secret_value_calls']}, {r['launches_per_s']:.1f} launches/s "
            f"({r['handling_s'] / baseline:.0f}x import boto3)"
        )
    print(f"throughput pool/single: {doc['throughput_ratio_pool_vs_single']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
