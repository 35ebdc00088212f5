"""How template.yaml builds and ships each function, generic over every function (a new one in
functions/<name>/ is covered as soon as the template names it): makefile build, the shared function
Makefile, a log group with a retention, and the deploy settings in samconfig.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = sorted(lid for lid, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function")
REFERENCE_MAKEFILE = ROOT / "functions" / "on_launch" / "Makefile"


def test_there_are_functions() -> None:
    assert {"OnLaunchFunction", "RotateTokensFunction"} <= set(FUNCTIONS)


@pytest.mark.parametrize("lid", FUNCTIONS)
def test_function_builds_with_the_shared_makefile(lid: str) -> None:
    res = RESOURCES[lid]
    assert res.get("Metadata", {}).get("BuildMethod") == "makefile", f"{lid}: Metadata BuildMethod makefile"
    folder = ROOT / res["Properties"]["CodeUri"]
    assert (folder / "app.py").is_file()
    makefile = folder / "Makefile"
    assert makefile.is_file(), f"copy functions/on_launch/Makefile into {folder.relative_to(ROOT)}"
    assert makefile.read_text() == REFERENCE_MAKEFILE.read_text(), f"{makefile} differs from the shared one"


@pytest.mark.parametrize("lid", FUNCTIONS)
def test_function_has_a_log_group_with_retention(lid: str) -> None:
    groups = [
        r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Logs::LogGroup"
        and r["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{lid}}}"}
    ]
    assert len(groups) == 1, f"{lid} needs one AWS::Logs::LogGroup named !Sub /aws/lambda/${{{lid}}}"
    assert groups[0]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_layer_builds_with_its_makefile_for_arm64() -> None:
    layer = RESOURCES["AutojoinLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert (ROOT / layer["Properties"]["ContentUri"] / "Makefile").is_file()


def test_samconfig_deploys_without_questions() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]
    deploy = config["deploy"]["parameters"]
    assert config["global"]["parameters"]["stack_name"]
    assert deploy["resolve_s3"] is True
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert "project=" in deploy["tags"]
    overrides = deploy["parameter_overrides"]
    required = [n for n, p in TEMPLATE["Parameters"].items() if "Default" not in p]
    for name in required:  # every parameter without a default has a placeholder to replace
        assert f"{name}=" in overrides, name
