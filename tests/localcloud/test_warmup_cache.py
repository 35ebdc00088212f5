"""The decoded copy of moto's instance-type list (scenario/warmup.py): same data, keyed on the file,
never read when the file changed, none kept when the cache is off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from moto.utilities.utils import load_resource

from autojoin.scenario import warmup

RESOURCE = warmup.INSTANCE_TYPES_RESOURCE


def _refuse(resource: str) -> Any:
    raise AssertionError(f"{resource} was decoded again instead of read from the copy")


def test_the_copy_holds_what_moto_decodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOJOIN_CACHE_DIR", str(tmp_path))
    first = warmup.decoded_resource(RESOURCE, load_resource)
    copies = list(tmp_path.glob("moto-*.marshal"))
    assert len(copies) == 1
    again = warmup.decoded_resource(RESOURCE, _refuse)  # from the copy: moto's reader is not called
    assert again == first == load_resource(RESOURCE)
    assert list(again) == list(first)  # order kept
    assert again["t3.micro"]["InstanceType"] == "t3.micro"


def test_a_changed_file_is_decoded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "types.json"
    monkeypatch.setenv("AUTOJOIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(warmup, "_resource_file", lambda resource: str(source))

    def read(resource: str) -> Any:
        return json.loads(source.read_text())

    source.write_text('{"a.small": {"VCpu": 1}}')
    assert warmup.decoded_resource(RESOURCE, read) == {"a.small": {"VCpu": 1}}
    source.write_text('{"a.small": {"VCpu": 2}, "b.large": {}}')
    assert warmup.decoded_resource(RESOURCE, read) == {"a.small": {"VCpu": 2}, "b.large": {}}
    assert warmup.decoded_resource(RESOURCE, _refuse) == {"a.small": {"VCpu": 2}, "b.large": {}}


@pytest.mark.parametrize("off", ["off", "0", ""])
def test_no_copy_when_the_cache_is_off(off: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOJOIN_CACHE_DIR", off)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    calls: list[str] = []

    def read(resource: str) -> Any:
        calls.append(resource)
        return {"x": 1}

    for _ in range(2):
        assert warmup.decoded_resource(RESOURCE, read) == {"x": 1}
    assert calls == [RESOURCE, RESOURCE]
    assert not any(tmp_path.rglob("*.marshal"))


def test_an_unreadable_copy_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOJOIN_CACHE_DIR", str(tmp_path))
    warmup.decoded_resource(RESOURCE, load_resource)
    (copy,) = tmp_path.glob("moto-*.marshal")
    copy.write_bytes(b"\x00garbage")
    assert warmup.decoded_resource(RESOURCE, lambda r: {"fresh": True}) == {"fresh": True}
