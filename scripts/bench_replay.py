#!/usr/bin/env python3
"""Benchmark: wall time of one ``autojoin replay`` (and optionally one ``autojoin simulate``), each a fresh
process, as a user runs them.

Prints the median of N runs beside the median time of ``python -c 'import boto3'`` measured in the same run
on the same interpreter, so a number taken on a loaded or slower machine can still be compared (the
ratio). The first run of each command is reported apart: it may fill the template cache
(``AUTOJOIN_CACHE_DIR``, see localcloud/template.py); ``--cold`` gives every run an empty cache.

    python scripts/bench_replay.py                      # replay events/autoscaling_launch_worker.json
    python scripts/bench_replay.py --runs 7 --simulate scenarios/seed-2-2-1-survives-az-loss.yaml
    make bench-replay
    python scripts/bench_replay.py --runs 3 --json OUT   # also write the figures as JSON to OUT
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and the exit code of one process."""
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in {0, 1}:
        sys.stderr.write(done.stderr.decode(errors="replace"))
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}")
    return elapsed, done.returncode


def _series(name: str, argv: list[str], runs: int, env: dict[str, str], cold: bool) -> dict[str, float]:
    times: list[float] = []
    for _ in range(runs):
        run_env = dict(env)
        if cold:
            run_env["AUTOJOIN_CACHE_DIR"] = tempfile.mkdtemp(prefix="autojoin-bench-cold-")
        elapsed, _code = _run(argv, run_env)
        times.append(elapsed)
        if cold:
            shutil.rmtree(run_env["AUTOJOIN_CACHE_DIR"], ignore_errors=True)
    return {"first": times[0], "median": statistics.median(times), "min": min(times), "max": max(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (default 5)")
    parser.add_argument("--event", default="events/autoscaling_launch_worker.json")
    parser.add_argument("--simulate", metavar="SCENARIO", help="also time `autojoin simulate SCENARIO`")
    parser.add_argument("--cold", action="store_true", help="an empty template cache for every run")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    args = parser.parse_args()

    python = sys.executable
    autojoin = str(Path(python).with_name("autojoin"))
    if not Path(autojoin).exists():
        raise SystemExit(f"{autojoin} not found: run with the project's .venv/bin/python (make setup)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cache = tempfile.mkdtemp(prefix="autojoin-bench-cache-")  # this run's own cache: the first run fills it
    env.setdefault("AUTOJOIN_CACHE_DIR", cache)

    baseline = _series("import boto3", [python, "-c", "import boto3"], max(args.runs, 5), env, cold=False)
    rows = [("python -c 'import boto3'", baseline)]
    keys = ["boto3"]
    rows.append(
        (
            f"autojoin replay {args.event}",
            _series("replay", [autojoin, "replay", args.event], args.runs, env, args.cold),
        )
    )
    keys.append("replay")
    if args.simulate:
        rows.append(
            (
                f"autojoin simulate {args.simulate}",
                _series("simulate", [autojoin, "simulate", args.simulate], args.runs, env, args.cold),
            )
        )
        keys.append("simulate")
    shutil.rmtree(cache, ignore_errors=True)

    print(f"{'command':<64} {'first':>7} {'median':>7} {'min':>7} {'max':>7} {'x boto3':>8}")
    for name, t in rows:
        ratio = t["median"] / baseline["median"]
        print(f"{name:<64} {t['first']:7.2f} {t['median']:7.2f} {t['min']:7.2f} {t['max']:7.2f} {ratio:8.1f}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"runs: {args.runs} each ({'cold' if args.cold else 'warm'} template cache after the first); "
        f"peak RSS of any child: {peak:.0f} MB; "
        f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    if args.json:
        doc = {
            key: {"command": name, **t, "ratio": t["median"] / baseline["median"]}
            for key, (name, t) in zip(keys, rows, strict=True)
        }
        doc["runs"] = {"each": args.runs, "cold_cache": args.cold}
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
