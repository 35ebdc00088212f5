"""cfn-lint on template.yaml: zero matches, informational ones included (the gate of issue 2)."""

from __future__ import annotations

from pathlib import Path

from cfnlint.api import ManualArgs, lint, lint_file
from tests.template import template_model as tm

ALL_LEVELS = ManualArgs(include_checks=["I"], regions=["us-east-1"])


def _describe(matches: list[object]) -> str:
    return "\n".join(str(m) for m in matches)


def test_template_is_lint_clean() -> None:
    matches = lint_file(Path(tm.TEMPLATE), config=ALL_LEVELS)
    assert matches == [], _describe(matches)


def test_lint_is_not_vacuous() -> None:
    """The same call does report problems: a dangling DependsOn and an unknown property."""
    text = tm.TEMPLATE.read_text()
    broken = text.replace(
        "      - OnLaunchFunctionLaunchLifecyclePermission\n", "      - NoSuchResource\n", 1
    )
    broken = broken.replace("      CapacityRebalance: false\n", "      CapacityRebalanceX: false\n", 1)
    assert broken != text
    rules = {m.rule.id for m in lint(broken, config=ALL_LEVELS)}
    assert {"E3005", "E3002"} <= rules, rules
