"""What a built handler loads at import and on its first call, in a fresh interpreter laid out as Lambda
lays it out (function folder, layer, then only the runtime's SDK) with a Lambda environment: the X-Ray SDK,
pydantic and the use case are NOT imported with the handler, and tracing is still on (the X-Ray SDK is
loaded by the first invocation). No timing here: scripts/bench_cold_start.py measures, tests never do."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.build.test_built_artifact import functions

ROOT = Path(__file__).resolve().parents[2]
# the first test to need a build runs `sam build` in its fixture (minutes on a fresh clone)
pytestmark = pytest.mark.timeout(1800)
NOT_AT_IMPORT = ("aws_xray_sdk", "pydantic", "autojoin.entrypoints", "autojoin.bootstrap", "autojoin.events")

_CHILD = r"""
import json, os, sys
sys.path[:0] = json.loads(os.environ["PATHS"])
import app
at_import = sorted(sys.modules)

class Context:
    function_name = "f"; function_version = "$LATEST"; memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    aws_request_id = "r"; log_group_name = "g"; log_stream_name = "s"
    def get_remaining_time_in_millis(self):
        return 60000

import contextlib, io
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        app.lambda_handler({}, Context())
    except Exception:
        pass
sampler = sys.modules["aws_xray_sdk.core"].xray_recorder.sampler
client = getattr(getattr(sampler, "_connector", None), "_xray_client", None)
xray = [type(client).__name__, getattr(client, "_client", "made") is None]
print(json.dumps({"import": at_import, "first": sorted(sys.modules), "app": app.__file__, "xray": xray}))
"""


def _loaded(check_build: Path, lid: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"):
            spec = importlib.util.find_spec(name)
            assert spec is not None and spec.origin is not None
            origin = Path(spec.origin)
            (Path(tmp) / (origin.parent if origin.name == "__init__.py" else origin).name).symlink_to(
                origin.parent if origin.name == "__init__.py" else origin
            )
        paths = [str(check_build / lid), str(check_build / "AutojoinLayer" / "python"), tmp]
        env = {
            "PATHS": json.dumps(paths),
            "AWS_LAMBDA_FUNCTION_NAME": "f",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
            "AUTOJOIN_CLUSTER": "c",
            "AUTOJOIN_STATE_TABLE": "t",
        }
        done = subprocess.run(
            [sys.executable, "-S", "-c", _CHILD], env=env, capture_output=True, text=True, check=False
        )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert str(out["app"]).startswith(str(check_build / lid))
    return out


@pytest.mark.parametrize("lid", sorted(functions()))
def test_handler_import_leaves_the_heavy_parts_to_the_first_call(check_build: Path, lid: str) -> None:
    loaded = _loaded(check_build, lid)
    at_import = set(loaded["import"])
    for heavy in NOT_AT_IMPORT:
        assert heavy not in at_import, f"{lid}: importing the handler loads {heavy}"
    assert "aws_lambda_powertools.logging.logger" in at_import  # the decorators are real
    first = set(loaded["first"])
    assert "aws_xray_sdk.core" in first, f"{lid}: the first call did not start the tracer (tracing off?)"
    assert "autojoin.entrypoints" in first
    # the X-Ray SDK's sampling client (unused in Lambda, most of the SDK's start-up) is not made
    assert loaded["xray"] == ["_OnDemandClient", True], loaded["xray"]
