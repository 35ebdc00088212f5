"""Offline deploy check: the local cloud provisions the BUILT template (.aws-sam/build-check/template.yaml)
and a replay runs through the BUILT handler and layer (scripts/deploy_check.py, in its own interpreter so
that the layer's copy of autojoin is the one imported). The build is this machine's (x86_64, its Python)
from the same Makefiles and lock as the shipped arm64 one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the first test to need a build runs `sam build` in its fixture (minutes on a fresh clone)
pytestmark = pytest.mark.timeout(1800)


def test_replay_runs_through_the_built_template_and_code(check_build: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "deploy_check.py"),
            "--build-dir",
            str(check_build),
            str(ROOT / "events" / "autoscaling_launch_manager.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert doc["decision"]["outcome"] == "joined"
    assert doc["decision"]["result"] == "CONTINUE"
    assert any(c["operation"] == "CompleteLifecycleAction" for c in doc["calls"])
    check = doc["deploy_check"]
    assert check["template"] == str(check_build / "template.yaml")
    modules = check["modules"]
    layer = check_build / "AutojoinLayer" / "python"
    handler = modules["autojoin_localcloud_fn_OnLaunchFunction"]
    assert handler == str(check_build / "OnLaunchFunction" / "app.py")
    for shipped in ("autojoin.bootstrap", "autojoin.entrypoints", "autojoin.observability", "pydantic_core"):
        assert modules[shipped].startswith(str(layer) + "/"), f"{shipped} came from {modules[shipped]}"
    # what never ships comes from the source tree (it is not in the layer)
    assert modules["autojoin.localcloud.cloud"].startswith(str(ROOT / "layers" / "autojoin" / "autojoin"))
