"""The two `sam build` outputs the build tests look at, made through make's own file targets: make rebuilds
only when an input (template, lock, Makefiles, package or handler code) changed, so a test run after an
unchanged build costs nothing.

- ``shipped_build``: .aws-sam/build (`make build`), Lambda arm64 / python3.12: what `sam deploy` uploads.
- ``check_build``: .aws-sam/build-check (`make build-check`), this machine's architecture and Python,
  the same Makefiles and lock: what the offline deploy check runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _make(target: str) -> Path:
    done = subprocess.run(
        ["make", "--no-print-directory", target], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        pytest.fail(f"`make {target}` failed (needs PyPI, npm and make; see README Deploy):\n{tail}")
    return ROOT / target


@pytest.fixture(scope="session")
def shipped_build() -> Path:
    _make(".aws-sam/build/template.yaml")
    return ROOT / ".aws-sam" / "build"


@pytest.fixture(scope="session")
def check_build() -> Path:
    _make(".aws-sam/build-check/template.yaml")
    return ROOT / ".aws-sam" / "build-check"
