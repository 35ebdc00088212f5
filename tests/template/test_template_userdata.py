"""The launch templates' user data: it is node/userdata.sh and node/agent.py exactly, fits EC2's limit,
holds no secret, and - run in a sandbox with stub system commands - installs a working agent."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.template import template_model as tm
from tests.template import userdata_tool
from tests.template.iam_eval import resolve

TEMPLATES = {"ManagerLaunchTemplate": "manager", "WorkerLaunchTemplate": "worker"}
STALE = "template.yaml is stale: run .venv/bin/python tests/template/userdata_tool.py --write"


def sub_of(template: str) -> tuple[str, dict[str, Any]]:
    user_data = tm.raw()["Resources"][template]["Properties"]["LaunchTemplateData"]["UserData"]
    script, variables = user_data["Fn::Base64"]["Fn::Sub"]
    return script, variables


def rendered(template: str) -> str:
    script, variables = sub_of(template)
    text: str = resolve({"Fn::Sub": [script, variables]}, tm.PHYSICAL)
    return text


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_user_data_is_the_package_files(template: str) -> None:
    script, variables = sub_of(template)
    assert script == userdata_tool.USERDATA.read_text(), STALE
    agent = userdata_tool.AGENT.read_bytes()
    assert gzip.decompress(base64.b64decode(variables["AgentGzipBase64"], validate=True)) == agent, STALE
    assert variables["AgentSha256"] == hashlib.sha256(agent).hexdigest(), STALE


def test_the_tool_sees_the_template_as_current() -> None:
    text = tm.TEMPLATE.read_text()
    assert len(userdata_tool.script_blocks(text)) == 2
    assert userdata_tool.main(["--check"]) == 0, STALE


def test_the_tool_repairs_a_stale_template() -> None:
    text = tm.TEMPLATE.read_text()
    stale = text.replace("set -euo pipefail", "set -eu", 1)
    stale = stale.replace('AgentSha256: "', 'AgentSha256: "00', 1)
    assert stale != text
    assert (
        userdata_tool.render(stale, userdata_tool.USERDATA.read_text(), userdata_tool.AGENT.read_bytes())
        == text
    )


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_user_data_fits_and_holds_no_secret(template: str) -> None:
    text = rendered(template)
    assert len(text.encode()) <= userdata_tool.USERDATA_LIMIT - 2048, "keep 2 KB of headroom"
    assert "SWMTKN" not in text
    assert "${" not in text  # every CloudFormation name was substituted
    role = TEMPLATES[template]
    assert f"AUTOJOIN_NODE_ROLE={role}\n" in text
    if role == "worker":  # a worker is not even told where the secrets are
        assert "AUTOJOIN_MANAGER_SECRET_ID=\n" in text and "AUTOJOIN_WORKER_SECRET_ID=\n" in text
    else:
        assert f"AUTOJOIN_MANAGER_SECRET_ID={tm.MANAGER_SECRET}\n" in text


def test_agent_settings_names_match_what_the_agent_reads() -> None:
    agent = userdata_tool.AGENT.read_text()
    script = userdata_tool.USERDATA.read_text()
    for name in (
        "AUTOJOIN_HANDOFF_TABLE",
        "AUTOJOIN_MANAGER_SECRET_ID",
        "AUTOJOIN_WORKER_SECRET_ID",
        "AWS_REGION",
    ):
        assert f'"{name}"' in agent, name
        assert f"\n{name}=" in script, name
    assert 'ENV_FILE = "/etc/autojoin/agent.env"' in agent
    assert "cat > /etc/autojoin/agent.env" in script


# --- run it -------------------------------------------------------------------------------------

STUB = """#!/bin/bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
if [ "$(basename "$0")" = dnf ] && [ -n "$FAIL_DNF" ]; then exit 1; fi
if [ "$(basename "$0")" = docker ] && [ "$1" = info ] && [ "$2" = --format ]; then
  echo '{"NodeID": "", "LocalNodeState": "inactive", "ControlAvailable": false}'
fi
exit 0
"""


def sandboxed(text: str, root: Path) -> str:
    """The rendered script with its absolute paths moved under ``root`` (the system's python3 stays)."""
    link = "ln -sf /usr/local/bin/autojoin-node /usr/bin/autojoin-node"
    assert link in text
    text = text.replace(link, ": no /usr/bin link in the sandbox")
    for path in ("/opt/autojoin", "/etc/autojoin", "/var/lib/autojoin", "/usr/local/bin/autojoin-node"):
        text = text.replace(path, f"{root}{path}")
    assert "/usr/bin/autojoin-node" not in text
    return text


def run_user_data(template: str, tmp_path: Path, *, fail_dnf: bool = False) -> tuple[int, Path, list[str]]:
    for tool in ("bash", "base64", "gunzip", "sha256sum", "install"):
        assert shutil.which(tool), f"{tool} is needed to run the user data"
    assert Path("/usr/bin/python3").exists(), "the wrapper runs /usr/bin/python3"
    root = tmp_path / "root"
    (root / "usr" / "local" / "bin").mkdir(parents=True)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("systemctl", "dnf", "docker"):
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(0o755)
    log = tmp_path / "stub.log"
    script = tmp_path / "user-data.sh"
    script.write_text(sandboxed(rendered(template), root))
    env = {
        "PATH": f"{stubs}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "STUB_LOG": str(log),
        "FAIL_DNF": "1" if fail_dnf else "",
        "HOME": str(tmp_path),
    }
    proc = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return proc.returncode, root, calls


def test_user_data_is_valid_bash() -> None:
    for template in TEMPLATES:
        proc = subprocess.run(
            ["bash", "-n"], input=rendered(template), capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_user_data_installs_the_agent_and_lets_ssm_in_last(template: str, tmp_path: Path) -> None:
    code, root, calls = run_user_data(template, tmp_path)
    assert code == 0
    assert (root / "opt/autojoin/agent.py").read_bytes() == userdata_tool.AGENT.read_bytes()
    env_file = root / "etc/autojoin/agent.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert settings["AUTOJOIN_HANDOFF_TABLE"] == tm.HANDOFF_TABLE
    assert settings["AWS_REGION"] == tm.REGION
    assert (root / "var/lib/autojoin/ready").exists()
    assert calls[0] == "systemctl stop amazon-ssm-agent"  # nothing reaches the node before it is ready
    assert calls[-1] == "systemctl start amazon-ssm-agent"
    assert "systemctl enable --now docker" in calls
    assert "dnf install -y docker" in calls
    # the installed command runs the agent
    wrapper = root / "usr/local/bin/autojoin-node"
    proc = subprocess.run(
        [str(wrapper), "info"],
        env={"PATH": f"{tmp_path / 'stubs'}:/usr/bin:/bin", "STUB_LOG": str(tmp_path / "stub.log")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == {"is_manager": False, "node_id": None, "state": "inactive"}


def test_a_failed_boot_leaves_the_node_reachable_but_not_ready(tmp_path: Path) -> None:
    code, root, calls = run_user_data("WorkerLaunchTemplate", tmp_path, fail_dnf=True)
    assert code != 0
    assert not (root / "var/lib/autojoin/ready").exists()
    assert calls[-1] == "systemctl start amazon-ssm-agent"  # the EXIT trap
    proc = subprocess.run(
        [str(root / "usr/local/bin/autojoin-node"), "join", "--role", "worker"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"] == "node_not_ready"
