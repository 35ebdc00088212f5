"""Cold start of every built handler against `import boto3`, as paired runs in one process tree.

What it measures, per function of a `sam build` output (default .aws-sam/build-check, the build for this
machine's Python: `make build-check`): a fresh interpreter imports the handler module (`app`) the way
Lambda does — sys.path = the function's folder, the layer's python/ folder, then a runtime folder holding
only what the Lambda runtime provides (boto3, botocore and their dependencies) — with a Lambda
environment (AWS_LAMBDA_FUNCTION_NAME set, so Powertools runs as in Lambda and tracing is on). Each run
is paired with a fresh interpreter that runs `import boto3` on the same runtime folder; pairs alternate
their order. The ratio is the median over pairs of handler import / boto3 import. Bytecode as shipped
(the build compiles it); `-S`, no site-packages, so nothing from this machine's environment leaks in.

A second column, "first call", adds the first invocation of the handler with an empty event to the
import: the modules a handler loads lazily show up there. An empty event is bad input for most handlers
(the safe answer, no AWS call); one that calls AWS anyway (the reconciler's tick) meets an endpoint on
loopback that refuses at once (AWS_ENDPOINT_URL, one attempt), so no time goes to the network.

Usage: python scripts/bench_cold_start.py [--build-dir DIR] [--runs N] [--max-ratio R] [--json OUT]
--json OUT also writes every figure, and the size on disk of the layer and of each function, as JSON.
Exit 1 when a handler's median import ratio is above --max-ratio (default 1.5). Not a test: timings are
measured here and reported, never asserted in the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")

_CHILD = r"""
import json, os, sys, time
sys.path[:0] = json.loads(os.environ["BENCH_PATH"])
target = os.environ["BENCH_TARGET"]
t0 = time.perf_counter()
module = __import__(target)
t1 = time.perf_counter()
first = None
if target == "app":
    import contextlib, io

    class Context:
        function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        function_version = "$LATEST"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
        aws_request_id = "00000000-0000-4000-8000-000000000000"
        log_group_name = "/aws/lambda/" + function_name
        log_stream_name = "bench"

        def get_remaining_time_in_millis(self):
            return 60000

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            module.lambda_handler({}, Context())
        except Exception:
            pass  # a rotation handler raises on bad input: that is its answer
    first = time.perf_counter() - t0
print(json.dumps({"import": t1 - t0, "first": first, "modules": len(sys.modules)}))
"""


def _runtime_dir(dest: Path) -> Path:
    """A folder with only what the Lambda python runtime provides, linked from this interpreter's copies."""
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise SystemExit(f"error: {name} is not importable here (run with the project's .venv python)")
        origin = Path(spec.origin)
        src = origin.parent if origin.name == "__init__.py" else origin
        (dest / src.name).symlink_to(src)
    return dest


def _size(folder: Path) -> int:
    """Bytes of every file under ``folder`` (what the zip holds, before compression)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _run(python: str, target: str, path: list[str], env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [python, "-S", "-c", _CHILD],
        env={**env, "BENCH_TARGET": target, "BENCH_PATH": json.dumps(path)},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"error: importing {target} failed:\n{out.stderr.strip()}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build-check")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--max-ratio", type=float, default=1.5)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    args = parser.parse_args()
    build = args.build_dir.resolve()
    layer = build / "AutojoinLayer" / "python"
    functions = sorted(p.parent for p in build.glob("*/app.py"))
    if not layer.is_dir() or not functions:
        print(f"error: no built layer and functions in {build} (run `make build-check`)", file=sys.stderr)
        return 2
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",  # not a secret: no AWS call is made
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        # a first call that does reach for AWS (a scheduled reconcile) fails at once, on loopback only
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
        "POWERTOOLS_SERVICE_NAME": "autojoin",
        "POWERTOOLS_METRICS_NAMESPACE": "Autojoin",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "AUTOJOIN_CLUSTER": "bench",
        "AUTOJOIN_STATE_TABLE": "bench-state",
    }
    with tempfile.TemporaryDirectory() as tmp:
        runtime = _runtime_dir(Path(tmp))
        rows: dict[str, dict[str, list[float]]] = {}
        for i in range(args.runs):
            for fn in functions:
                env = {**base_env, "AWS_LAMBDA_FUNCTION_NAME": f"bench-{fn.name}"}
                row = rows.setdefault(fn.name, {"boto3": [], "import": [], "first": [], "ri": [], "rf": []})
                pair = ["boto3", "app"] if i % 2 == 0 else ["app", "boto3"]
                got: dict[str, dict[str, float]] = {}
                for target in pair:
                    path = [str(runtime)] if target == "boto3" else [str(fn), str(layer), str(runtime)]
                    got[target] = _run(args.python, target, path, env)
                b = got["boto3"]["import"]
                row["boto3"].append(b)
                row["import"].append(got["app"]["import"])
                row["first"].append(got["app"]["first"])
                row["ri"].append(got["app"]["import"] / b)
                row["rf"].append(got["app"]["first"] / b)
    med = statistics.median
    print(f"cold start vs `import boto3`, {args.runs} paired runs each, build {build}")
    print(f"{'function':<24}{'boto3 ms':>10}{'import ms':>11}{'ratio':>8}{'first call ms':>15}{'ratio':>8}")
    worst = 0.0
    for name, r in rows.items():
        ratio = med(r["ri"])
        worst = max(worst, ratio)
        print(
            f"{name:<24}{med(r['boto3']) * 1000:>10.1f}{med(r['import']) * 1000:>11.1f}{ratio:>7.2f}x"
            f"{med(r['first']) * 1000:>15.1f}{med(r['rf']):>7.2f}x"
        )
    verdict = "ok" if worst <= args.max_ratio else "TOO SLOW"
    print(f"worst import ratio {worst:.2f}x (limit {args.max_ratio}x): {verdict}")
    if args.json:
        doc = {
            "build_dir": str(build),
            "runs": args.runs,
            "layer_bytes": _size(layer),
            "functions": {
                name: {
                    "bytes": _size(build / name),
                    "boto3_ms": med(r["boto3"]) * 1000,
                    "import_ms": med(r["import"]) * 1000,
                    "first_call_ms": med(r["first"]) * 1000,
                    "import_ratio": med(r["ri"]),
                    "first_call_ratio": med(r["rf"]),
                }
                for name, r in rows.items()
            },
            "worst_import_ratio": worst,
            "max_ratio": args.max_ratio,
        }
        args.json.write_text(json.dumps(doc, indent=1))
    return 0 if worst <= args.max_ratio else 1


if __name__ == "__main__":
    raise SystemExit(main())
