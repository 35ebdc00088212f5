"""Every real sample event in tests/corpus/events (public sources, see tests/corpus/PROVENANCE.md) replays
to the exit its provenance row expects: 0 with a decision (``ignored: …`` included), or a clean 2 (one
``error:`` line) for a file the row calls malformed. Never a traceback, never exit 1 (no sample holds a
token), never a decision for a sample that names no group of the cluster other than ``ignored``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autojoin.cli.main import app

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "corpus"
TEMPLATE = str(REPO / "template.yaml")
runner = CliRunner()


def provenance() -> dict[str, int]:
    """file -> expected exit, from the table in PROVENANCE.md."""
    rows: dict[str, int] = {}
    for line in (CORPUS / "PROVENANCE.md").read_text().splitlines():
        m = re.match(r"^\| (\S+\.json) \| .+ \| ([02]) \|$", line)
        if m:
            rows[m[1]] = int(m[2])
    return rows


SAMPLES = sorted(p.name for p in (CORPUS / "events").glob("*.json"))


def test_every_sample_has_its_provenance() -> None:
    rows = provenance()
    assert len(SAMPLES) >= 10
    assert set(SAMPLES) == set(rows), set(SAMPLES) ^ set(rows)


@pytest.mark.parametrize("name", SAMPLES)
def test_a_real_sample_replays_cleanly(name: str) -> None:
    expected = provenance()[name]
    result = runner.invoke(app, ["replay", str(CORPUS / "events" / name), "--json", "--template", TEMPLATE])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == expected, (result.exit_code, result.stderr[-2000:])
    if expected == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        return
    doc = json.loads(result.stdout)
    assert doc["violations"] == []
    assert doc["decision"] is not None
    # the samples name groups of other clusters (my-asg, …): autojoin must not act on them
    assert not any(
        c["operation"] in {"CompleteLifecycleAction", "TerminateInstanceInAutoScalingGroup"}
        for c in doc["calls"]
    ), doc["calls"]
