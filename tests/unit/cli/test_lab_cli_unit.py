"""`autojoin lab ...` where no lab is needed: empty labs, bad options, a machine that cannot run one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autojoin.cli.main import app


def test_status_of_a_lab_that_does_not_exist(tmp_path: Path) -> None:
    runner = CliRunner()
    where = ["--root", str(tmp_path / "none"), "--prefix", "aju"]
    result = runner.invoke(app, ["lab", "status", *where])
    assert result.exit_code == 0 and "no lab nodes under" in result.output
    result = runner.invoke(app, ["lab", "status", "--json", *where])
    assert json.loads(result.stdout) == {"nodes": [], "members": []}


def test_up_without_root_fails_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("autojoin.lab.os.geteuid", lambda: 1000)
    result = CliRunner().invoke(app, ["lab", "up", "--root", str(tmp_path), "--prefix", "aju"])
    assert result.exit_code == 2
    assert "error: the swarm lab needs root" in result.output


def test_up_without_docker_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "autojoin.lab.shutil.which", lambda tool: None if tool == "dockerd" else "/bin/" + tool
    )
    result = CliRunner().invoke(app, ["lab", "up", "--root", str(tmp_path), "--prefix", "aju"])
    assert result.exit_code == 2
    assert "missing dockerd" in result.output and "swarm-lab.sh install" in result.output


def test_bad_options_are_refused_before_anything_starts(tmp_path: Path) -> None:
    runner = CliRunner()
    where = ["--root", str(tmp_path), "--prefix", "aju"]
    result = runner.invoke(app, ["lab", "up", "--zones", " , ", *where])
    assert result.exit_code == 2 and "at least one zone" in result.output
    result = runner.invoke(app, ["lab", "bench", "--how", "drown", *where])
    assert result.exit_code == 2 and "kill or cut" in result.output
    result = runner.invoke(app, ["lab", "up", "--managers", "0", *where])
    assert result.exit_code == 2
    assert not any(tmp_path.iterdir())
