"""make bench-burst: the 200-launch worker burst (scenarios/worker-burst-200.yaml) on the local cloud.

It used to be a test and took a fifth of the suite's time; the tests keep a 20-launch burst
(scenarios/worker-burst-20.yaml). This runs the big one and reports, from one run on this machine:
whether it passed, the CPU seconds it took and that time as a ratio of ``python -c 'import boto3'``
(so the figure means the same on a loaded or an idle machine). Exit 1 if the scenario fails.

    python scripts/bench_burst.py [--scenario scenarios/worker-burst-200.yaml] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run ``cmd``; return it with its wall seconds and the CPU seconds its process used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done, wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/worker-burst-200.yaml")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    args = parser.parse_args()
    _, _, baseline = _run([sys.executable, "-c", "import boto3"])
    autojoin = str(Path(sys.executable).with_name("autojoin"))
    done, wall, cpu = _run([autojoin, "simulate", args.scenario, "--json"])
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = done.stderr[-2000:]
        print(f"error: simulate printed no JSON (exit {done.returncode}): {tail}", file=sys.stderr)
        return 1
    final = doc.get("final", {})
    print(f"scenario        {args.scenario}")
    print(f"passed          {doc.get('passed')}  (exit {done.returncode})")
    print(f"workers         {final.get('workers')}  lifecycle {final.get('lifecycle')}")
    print(f"cpu seconds     {cpu:.1f}  (wall {wall:.1f} s)")
    print(f"import boto3    {baseline:.2f} cpu s")
    print(f"ratio           {cpu / baseline:.0f}x  the CPU time of `python -c 'import boto3'`")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "scenario": args.scenario,
                    "passed": bool(doc.get("passed")),
                    "exit": done.returncode,
                    "workers": final.get("workers"),
                    "lifecycle": final.get("lifecycle"),
                    "cpu_s": cpu,
                    "wall_s": wall,
                    "boto3_cpu_s": baseline,
                    "ratio_cpu": cpu / baseline,
                },
                indent=1,
            )
        )
    return 0 if done.returncode == 0 and doc.get("passed") else 1


if __name__ == "__main__":
    sys.exit(main())
