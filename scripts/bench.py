"""``make bench``: run every benchmark on this machine, side by side in one run, and write the report.

Runs, each as its own process writing JSON into ``--out`` (default build/bench):

- resilience     scripts/bench_resilience.py (plain Auto Scaling vs autojoin; its own fragment and plots),
                 when that script exists (else the section says "not run")
- cold_start     scripts/bench_cold_start.py on the built layer (``--build-dir``), sizes included
- calls          scripts/bench_calls.py: AWS calls per event type, cold and warm, beside the minimum
- policy         scripts/bench_termination_policy.py at 30,000 offered instances
- pool           scripts/bench_pool.py: 1,000 worker launches at once to a pool of handler environments
- replay         scripts/bench_replay.py: one replay and one simulate, fresh processes, beside import boto3
- burst          scripts/bench_burst.py: the 200-launch scenario (scenarios/worker-burst-200.yaml)
- swarm          ``autojoin lab bench --json --guard`` (real Docker Swarm lab; needs root)

then writes docs/benchmarks.md, docs/benchmarks.json and docs/img/bench-*.png (matplotlib: the ``bench``
extra). Every figure that depends on the machine is a ratio to something measured in the same run.
A piece that fails is reported as failed with its error, never replaced by a number. Asserts nothing.

    python scripts/bench.py [--only calls,policy] [--quick] [--resilience-args "..."] [--out DIR]
        [--docs DIR] [--lab-prefix ajb] [--lab-root /tmp/ajb-lab]

``--quick`` runs every piece at its smallest size (what tests/bench/test_bench_smoke.py uses).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PIECES = ("resilience", "cold_start", "calls", "policy", "pool", "replay", "burst", "swarm")


def commands(args: argparse.Namespace, out: Path) -> dict[str, list[str]]:
    """Each piece's command line (it writes ``out/<piece>.json``)."""
    quick = args.quick
    autojoin = str(Path(PY).with_name("autojoin"))
    return {
        "resilience": [PY, "scripts/bench_resilience.py", *shlex.split(args.resilience_args)],
        "cold_start": [
            PY,
            "scripts/bench_cold_start.py",
            "--build-dir",
            str(args.build_dir),
            "--runs",
            "3" if quick else "15",
            "--json",
            str(out / "cold_start.json"),
        ],
        "calls": [PY, "scripts/bench_calls.py", "--json", str(out / "calls.json")],
        "policy": [
            PY,
            "scripts/bench_termination_policy.py",
            "--instances",
            "300" if quick else "30000",
            "--repeat",
            "1" if quick else "5",
            "--json",
            str(out / "policy.json"),
        ],
        "pool": [
            PY,
            "scripts/bench_pool.py",
            "--launches",
            "6" if quick else str(args.launches),
            "--pool",
            "3" if quick else str(args.pool),
            "--baseline-launches",
            "6" if quick else str(args.baseline_launches),
            "--json",
            str(out / "pool.json"),
        ],
        "replay": [
            PY,
            "scripts/bench_replay.py",
            "--runs",
            "1" if quick else "5",
            "--simulate",
            "scenarios/seed-2-2-1-survives-az-loss.yaml",
            "--json",
            str(out / "replay.json"),
        ],
        "burst": [
            PY,
            "scripts/bench_burst.py",
            "--scenario",
            "scenarios/worker-burst-20.yaml" if quick else "scenarios/worker-burst-200.yaml",
            "--json",
            str(out / "burst.json"),
        ],
        "swarm": [
            autojoin,
            "lab",
            "bench",
            "--json",
            "--prefix",
            args.lab_prefix,
            "--root",
            args.lab_root,
            "--managers",
            "2" if quick else "3",
            "--workers",
            "0" if quick else "2",
            *([] if quick else ["--guard"]),
        ],
    }


def run_piece(name: str, argv: list[str], out: Path) -> dict[str, Any]:
    """Run one piece; its JSON (or why there is none) and how long it took."""
    t0 = time.perf_counter()
    target = out / f"{name}.json"
    if name == "resilience":
        target = out / "resilience.json"
        if not (ROOT / "scripts" / "bench_resilience.py").is_file():
            return {"status": "not run", "why": "scripts/bench_resilience.py is not in this checkout"}
    if name == "swarm" and hasattr(os, "geteuid") and os.geteuid() != 0:
        return {"status": "not run", "why": "the real-swarm lab needs root"}
    target.unlink(missing_ok=True)
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if name == "swarm" and done.returncode == 0:
        target.write_text(done.stdout)  # `autojoin lab bench --json` prints its report
    entry: dict[str, Any] = {"command": " ".join(argv), "exit": done.returncode, "seconds": round(seconds, 1)}
    if target.is_file():
        try:
            entry["data"] = json.loads(target.read_text())
            entry["status"] = "ok" if done.returncode == 0 else f"exit {done.returncode}"
        except json.JSONDecodeError as exc:
            entry["status"] = "failed"
            entry["why"] = f"unreadable JSON: {exc}"
    else:
        entry["status"] = "failed"
        entry["why"] = (done.stderr or done.stdout).strip()[-800:] or f"exit {done.returncode}, no output"
    return entry


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help=f"comma-separated pieces ({', '.join(PIECES)}); default all")
    ap.add_argument("--quick", action="store_true", help="every piece at its smallest size")
    ap.add_argument("--resilience-args", default="", help="arguments for scripts/bench_resilience.py")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    ap.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build-check")
    ap.add_argument("--launches", type=int, default=1000)
    ap.add_argument("--pool", type=int, default=10)
    ap.add_argument("--baseline-launches", type=int, default=200)
    ap.add_argument("--lab-prefix", default="ajb")
    ap.add_argument("--lab-root", default="/tmp/ajb-lab")  # noqa: S108 - root-only lab state
    ap.add_argument("--no-plots", action="store_true", help="no PNGs (no matplotlib needed)")
    ap.add_argument(
        "--combine",
        nargs="+",
        type=Path,
        metavar="BENCHMARKS.json",
        help="measure nothing: write the report from these runs' benchmarks.json (a piece that did not run "
        "or failed in one is taken from a later one; each run's start and length are kept)",
    )
    ap.add_argument("--note", action="append", default=[], help="with --combine: a sentence for the report")
    args = ap.parse_args()
    if args.combine:
        return combine(args.combine, args.docs, args.out, plots=not args.no_plots, notes=args.note)
    only = [p.strip() for p in args.only.split(",")] if args.only else list(PIECES)
    unknown = [p for p in only if p not in PIECES]
    if unknown:
        print(f"error: unknown piece(s) {', '.join(unknown)} (known: {', '.join(PIECES)})", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    argv = commands(args, args.out)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    for name in only:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        results[name] = run_piece(name, argv[name], args.out)
        print(f"bench: {name} {results[name]['status']}", file=sys.stderr, flush=True)
    total = time.perf_counter() - t0
    doc = {
        "meta": {
            "started": started.strftime("%Y-%m-%d %H:%M UTC"),
            "total_seconds": round(total, 1),
            "quick": args.quick,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_end": round(os.getloadavg()[0], 2),
        },
        "pieces": results,
    }
    from bench_report import write_report  # scripts/bench_report.py, beside this file

    write_report(doc, args.docs, args.out, plots=not args.no_plots)
    print(f"bench: wrote {args.docs / 'benchmarks.md'} and benchmarks.json in {total:.0f} s", file=sys.stderr)
    return 0


def combine(paths: list[Path], docs: Path, out: Path, *, plots: bool, notes: list[str] | None = None) -> int:
    """One report from several runs that ran side by side (each piece's ratios are its own run's)."""
    from bench_report import write_report

    runs = [json.loads(p.read_text()) for p in paths]
    pieces: dict[str, Any] = {}
    source: dict[str, int] = {}
    for k, run in enumerate(runs):
        for name, entry in run["pieces"].items():
            if name not in pieces or ("data" not in pieces[name] and "data" in entry):
                pieces[name], source[name] = entry, k
    meta = dict(runs[0]["meta"])

    def sub_runs(i: int, run: dict[str, Any]) -> list[dict[str, Any]]:
        """The runs a piece taken from input ``i`` came from: an input that was itself combined keeps the
        runs it lists (only those whose pieces are still taken from it)."""
        own = sorted(n for n, k in source.items() if k == i)
        nested = run["meta"].get("runs")
        if not nested:
            return [
                {"started": run["meta"]["started"], "total_seconds": run["meta"]["total_seconds"]}
                | {"pieces": own}
            ]
        kept = [{**r, "pieces": [n for n in r["pieces"] if n in own]} for r in nested]
        return [r for r in kept if r["pieces"]]

    meta["runs"] = [r for i, run in enumerate(runs) for r in sub_runs(i, run)]
    meta["total_seconds"] = max(r["meta"]["total_seconds"] for r in runs)
    meta["notes"] = list(notes or [])
    ordered = {n: pieces[n] for n in PIECES if n in pieces}
    write_report({"meta": meta, "pieces": ordered}, docs, out, plots=plots)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
