"""LocalSocketRunner without a lab: a stand-in docker CLI script, the agent in-process."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import pytest

from autojoin.adapters.local.runner import LocalNode, LocalSocketRunner, default_docker_cli
from autojoin.errors import Unreachable
from autojoin.node import agent  # the module the runner calls in-process

NODE = LocalNode(
    "i-lab000000000001", "unix:///tmp/x/n1/docker.sock", "10.200.0.11", "AROALAB:i-lab000000000001"
)


@pytest.fixture
def cli(tmp_path: Path) -> str:
    script = tmp_path / "docker"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$3" = sleep ]; then exec sleep 5; fi\n'
        'if [ "$1" = info ]; then echo "{\\"NodeID\\":\\"n1\\",\\"LocalNodeState\\":\\"active\\",'
        '\\"ControlAvailable\\":true}"; exit 0; fi\n'
        'echo "args=$*"; echo "err" >&2; exit 3\n'
    )
    script.chmod(0o755)
    return str(script)


def test_docker_argv_goes_to_the_nodes_socket(cli: str) -> None:
    result = LocalSocketRunner({NODE.instance_id: NODE}, docker_cli=cli).run(
        NODE.instance_id, ["docker", "node", "ls"]
    )
    assert (result.exit_code, result.stdout, result.stderr) == (
        3,
        f"args=-H {NODE.socket} node ls\n",
        "err\n",
    )


def test_a_docker_command_that_hangs_is_unreachable(cli: str) -> None:
    with pytest.raises(Unreachable, match="timed out"):
        LocalSocketRunner({NODE.instance_id: NODE}, docker_cli=cli).run(
            NODE.instance_id, ["docker", "sleep"], timeout=0.2
        )


def test_the_agent_runs_in_process_with_the_nodes_identity(cli: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    real_main = agent.main

    def spy(
        argv: Sequence[str], env: Mapping[str, str], session: Any = None, *, out: TextIO | None = None
    ) -> int:
        seen.update(argv=argv, env=dict(env), session=session)
        return real_main(argv, env, session, out=out)

    monkeypatch.setattr(agent, "main", spy)
    marker = object()
    runner = LocalSocketRunner(
        lambda iid: NODE if iid == NODE.instance_id else None,
        env={"AUTOJOIN_HANDOFF_TABLE": "t"},
        session_factory=lambda: marker,
        docker_cli=cli,
    )
    result = runner.run(NODE.instance_id, ["autojoin-node", "info"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"is_manager": True, "node_id": "n1", "state": "active"}
    assert seen["argv"] == ["info"] and seen["session"] is marker
    assert seen["env"] == {
        "AUTOJOIN_HANDOFF_TABLE": "t",
        "DOCKER_HOST": NODE.socket,
        "AUTOJOIN_PRINCIPAL": NODE.principal,
        "AUTOJOIN_ADVERTISE_ADDR": NODE.address,
        "AUTOJOIN_DOCKER_CLI": cli,
    }


def test_unknown_or_cut_nodes_are_unreachable_and_other_programs_refused(cli: str) -> None:
    cut = LocalNode("i-cut", "unix:///c.sock", "10.200.0.12", "p:i-cut", cut=True)
    runner = LocalSocketRunner({NODE.instance_id: NODE, cut.instance_id: cut}, docker_cli=cli)
    with pytest.raises(Unreachable, match="no lab node"):
        runner.run("i-other", ["docker", "info"])
    with pytest.raises(Unreachable, match="cut off"):
        runner.run("i-cut", ["docker", "info"])
    with pytest.raises(ValueError, match="only docker"):
        runner.run(NODE.instance_id, ["rm", "-rf", "/"])
    with pytest.raises(ValueError, match="empty"):
        runner.run(NODE.instance_id, [])


def test_default_docker_cli_prefers_debians(monkeypatch: pytest.MonkeyPatch) -> None:
    exists = "autojoin.adapters.local.runner.os.path.exists"
    monkeypatch.setattr(exists, lambda p: p == "/usr/bin/docker")
    assert default_docker_cli() == "/usr/bin/docker"
    monkeypatch.setattr(exists, lambda p: False)
    assert default_docker_cli() == "docker"
    assert LocalSocketRunner({})._docker_cli == "docker"


def test_the_lab_node_advertises_its_own_lab_address(cli: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control plane knows an instance by its VPC address; in the lab only its own address works."""
    seen: list[Sequence[str]] = []

    def fake_main(
        argv: Sequence[str], env: Mapping[str, str], session: Any = None, *, out: TextIO | None = None
    ) -> int:
        seen.append(argv)
        return 0

    monkeypatch.setattr(agent, "main", fake_main)
    runner = LocalSocketRunner(lambda iid: NODE, docker_cli=cli)
    runner.run(NODE.instance_id, ["autojoin-node", "init", "--advertise-addr", "10.0.1.23"])
    runner.run(NODE.instance_id, ["autojoin-node", "join", "--role", "worker"])
    assert seen == [["init", "--advertise-addr", NODE.address], ["join", "--role", "worker"]]
