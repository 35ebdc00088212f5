"""Fuzzing the CLI (hypothesis): ``replay`` and ``simulate`` with generated files, the fault flags, and every
planning command's parsers with generated values: exit 0/1 with a result or exit 2 with one ``error: …``
line, never a traceback.

Example counts are small for ``make test``; ``AUTOJOIN_FUZZ_EXAMPLES=500`` runs each fuzzer longer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from tests.localcloud.test_fuzz_entrypoints import (
    FUZZ,
    LIFECYCLE,
    POLICY,
    RESULTS,
    ROTATION,
    SLOW,
    TEMPLATE,
    TERMINATE,
    _json,
    _leaves,
    mutated,
)
from typer.testing import CliRunner

from autojoin.cli.main import app
from autojoin.errors import BadInput
from autojoin.scenario.model import parse_scenario

REPO = Path(__file__).resolve().parents[2]

cli = CliRunner()


def _no_traceback(result: Any, allowed: set[int]) -> None:
    assert result.exit_code in allowed, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert lines and lines[-1].startswith("error: "), result.output


@SLOW
@given(event=mutated(LIFECYCLE + TERMINATE + POLICY + ROTATION + RESULTS))
def test_replay_answers_any_file_without_a_traceback(tmp_path_factory: Any, event: Any) -> None:
    path = tmp_path_factory.mktemp("replay") / "event.json"
    path.write_text(json.dumps(event))
    result = cli.invoke(app, ["replay", str(path), "--json", "--template", str(TEMPLATE)])
    _no_traceback(result, {0, 2})


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_replay_rejects_unreadable_files_with_one_line(tmp_path_factory: Any, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("replay") / "event.json"
    path.write_bytes(raw)
    try:
        loaded = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        loaded = None
    if isinstance(loaded, dict):
        return  # a JSON object: the replay fuzzer above covers those (each one runs a local cloud)
    result = cli.invoke(app, ["replay", str(path), "--template", str(TEMPLATE)])
    _no_traceback(result, {2})


_steps = st.fixed_dictionaries(
    {"action": st.sampled_from(["scale", "crash", "wait", "deliver", "az_outage", "bogus"])},
    optional={
        "at": _leaves,
        "group": _leaves,
        "desired": _leaves,
        "target": _leaves,
        "zone": _leaves,
        "seconds": _leaves,
        "event": _leaves,
    },
)
_scenario = (
    st.fixed_dictionaries(
        {},
        optional={
            "cluster": _json | st.fixed_dictionaries({}, optional={"managers": _leaves, "zones": _json}),
            "steps": st.lists(_steps, max_size=3) | _json,
            "settle": _leaves,
            "faults": _json | st.fixed_dictionaries({}, optional={"throttle": _leaves, "kills": _json}),
            "expect": _json,
        },
    )
    | _json
)


@FUZZ
@given(doc=_scenario)
def test_a_scenario_either_loads_or_is_one_bad_input(doc: Any) -> None:
    try:
        parse_scenario(doc, REPO / "scenarios" / "fuzz.yaml")
    except BadInput as exc:
        assert "\n" not in str(exc).strip()


@SLOW
@given(doc=_scenario)
def test_simulate_rejects_a_bad_scenario_with_one_line(tmp_path_factory: Any, doc: Any) -> None:
    try:
        parse_scenario(doc, REPO / "scenarios" / "fuzz.yaml")
        return  # a valid scenario: running it is the scenario tests' and the chaos runs' job
    except BadInput:
        pass
    path = tmp_path_factory.mktemp("sim") / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = cli.invoke(app, ["simulate", str(path), "--template", str(TEMPLATE)])
    _no_traceback(result, {2})


@FUZZ
@given(
    flag=st.sampled_from(["--throttle", "--errors", "--kill", "--duplicate", "--late", "--lose"]),
    value=st.text(max_size=12) | st.floats().map(str) | st.integers(-5, 5).map(str),
)
def test_simulate_fault_flags_are_checked_before_anything_runs(flag: str, value: str) -> None:
    result = cli.invoke(app, ["simulate", "/nonexistent.yaml", flag, value, "--template", str(TEMPLATE)])
    _no_traceback(result, {2})
    try:
        valid = 0.0 <= float(value.strip()) <= 1.0
    except ValueError:
        valid = False
    last = result.output.strip().splitlines()[-1]
    assert (flag in last) != valid, (value, last)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chaos", "x"], "error: --chaos must be a whole number, got 'x'"),
        (["--chaos", "0"], "error: --chaos must be at least 1, got 0"),
        (["--chaos", "2", "--fault-seed", "-1"], "error: --fault-seed must be at least 0, got -1"),
        (["x.yaml", "--chaos", "2"], "error: give a SCENARIO.yaml or --chaos N, not both"),
        ([], "error: give a SCENARIO.yaml (or --chaos N)"),
    ],
)
def test_simulate_chaos_arguments_are_checked(args: list[str], message: str) -> None:
    result = cli.invoke(app, ["simulate", *args, "--template", str(TEMPLATE)])
    _no_traceback(result, {2})
    assert result.output.strip().splitlines()[-1] == message


_arg = st.text(max_size=30) | st.sampled_from(["a=2,b=2,c=1", "a,b,c", "3", "-1", "a=1,a=2", "=", ",,"])


@FUZZ
@given(
    command=st.sampled_from(
        [
            ["plan", "--managers"],
            ["plan", "--zones", "a,b,c", "--managers"],
            ["plan", "--managers", "5", "--zones"],
            ["plan", "--managers", "5", "--zones", "a,b,c", "--capacity"],
            ["plan", "--managers", "5", "--zones", "a,b,c", "--impaired"],
            ["assess", "--layout"],
            ["recommend", "--zones", "a,b,c", "--survive-zones"],
            ["recommend", "--survive-zones", "1", "--zones"],
            ["recommend", "--survive-zones", "1", "--zones", "a,b,c", "--survive-nodes"],
            ["transition", "--from"],
            ["transition", "--from", "a=1,b=1,c=1", "--to"],
            ["transition", "--from", "a=2,b=1", "--to", "a=1,b=1,c=1", "--unhealthy"],
            ["transition", "--from", "a=2,b=1", "--to", "a=1,b=1,c=1", "--spare-workers"],
        ]
    ),
    value=_arg,
    as_json=st.booleans(),
)
def test_planning_commands_parse_anything_without_a_traceback(
    command: list[str], value: str, as_json: bool
) -> None:
    result = cli.invoke(app, [*command, value, *(["--json"] if as_json else [])])
    _no_traceback(result, {0, 1, 2})


def test_a_field_name_with_a_line_break_is_reported_on_one_line() -> None:
    # found by test_simulate_rejects_a_bad_scenario_with_one_line: {"\r0": null} split the error in two
    try:
        parse_scenario({"\r0": None, "steps": []}, REPO / "scenarios" / "fuzz.yaml")
    except BadInput as exc:
        assert "\n" not in str(exc) and "\r" not in str(exc), str(exc)
        assert "unknown field '\\r0'" in str(exc)
    else:
        raise AssertionError("an unknown field was accepted")
