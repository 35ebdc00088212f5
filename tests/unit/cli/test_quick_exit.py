"""replay and simulate end their process without the interpreter's teardown (cli/main.py ``_end``): the
whole output still arrives through a pipe, and exit codes are the documented ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _autojoin(*argv: str) -> subprocess.CompletedProcess[str]:
    code = f"import sys; sys.argv = ['autojoin', *{list(argv)!r}]; from autojoin.cli.main import app; app()"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False, timeout=600
    )


def test_replay_output_arrives_whole_through_a_pipe_with_exit_0() -> None:
    done = _autojoin("replay", "events/autoscaling_launch_worker.json", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # all of it: flushed before the process ended
    assert document["decision"]["outcome"] == "joined"
    assert document["violations"] == []


def test_bad_input_still_exits_2_with_its_error_line(tmp_path: Path) -> None:
    done = _autojoin("replay", str(tmp_path / "missing.json"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert done.stdout == ""
