"""What `sam build` ships (.aws-sam/build, Lambda arm64 / python3.12), checked file by file: native code
for the right machine, nothing shadowing the runtime's boto3/botocore, 3.12 bytecode, the lock's exact
versions, and a layer that carries what the functions import and nothing else. Generic over every
function of template.yaml, so a new function is covered without touching this file."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from tests.build.imports import closure

ROOT = Path(__file__).resolve().parents[2]
# the first test to need a build runs `sam build` in its fixture (minutes on a fresh clone)
pytestmark = pytest.mark.timeout(1800)
LOCK = ROOT / "layers" / "autojoin" / "requirements.lock"
AARCH64 = 183  # ELF e_machine
PY312_MAGIC = (3531).to_bytes(2, "little") + b"\r\n"
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
NEVER_SHIPPED = ("cli", "lab", "localcloud", "scenario", "node", "adapters/sim", "adapters/local")


def functions() -> dict[str, Any]:
    resources = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]
    return {lid: r for lid, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def layer(build: Path) -> Path:
    return build / "AutojoinLayer" / "python"


def test_native_modules_are_linux_aarch64(shipped_build: Path) -> None:
    libs = sorted(layer(shipped_build).rglob("*.so"))
    assert any(p.parent.name == "pydantic_core" for p in libs), "pydantic_core's extension is missing"
    for lib in libs:
        head = lib.read_bytes()[:20]
        assert head[:4] == b"\x7fELF", f"{lib.name}: not an ELF shared object"
        machine = int.from_bytes(head[18:20], "little")
        assert machine == AARCH64, f"{lib.relative_to(shipped_build)}: e_machine {machine}, not aarch64"
        assert "x86_64" not in lib.name, lib.name
        if ".cpython-" in lib.name:
            assert ".cpython-312-aarch64-linux-gnu." in lib.name, f"{lib.name}: not built for CPython 3.12"


def test_nothing_shadows_the_runtime_sdk(shipped_build: Path) -> None:
    top = {_norm(p.name.split("-")[0].removesuffix(".py")) for p in layer(shipped_build).iterdir()}
    assert "aws-xray-sdk" in {_norm(p.name.split("-")[0]) for p in layer(shipped_build).glob("*.dist-info")}
    shadowing = sorted(top & {_norm(n) for n in RUNTIME_PROVIDED})
    assert not shadowing, f"the layer ships {shadowing}: the Lambda runtime's own copies must be used"
    assert not (layer(shipped_build) / "bin").exists()


def test_every_module_has_python312_bytecode(shipped_build: Path) -> None:
    sources = sorted(layer(shipped_build).rglob("*.py"))
    for lid in functions():
        sources += sorted((shipped_build / lid).glob("*.py"))
    assert len(sources) > 100
    for src in sources:
        pyc = src.parent / "__pycache__" / f"{src.stem}.cpython-312.pyc"
        assert pyc.is_file(), f"no 3.12 bytecode for {src.relative_to(shipped_build)}"
        header = pyc.read_bytes()[:8]
        assert header[:4] == PY312_MAGIC, f"{pyc.name}: magic {header[:4]!r} is not CPython 3.12's"
        flags = int.from_bytes(header[4:8], "little")
        assert flags == 0b01, f"{pyc.name}: flags {flags} (want unchecked-hash: Lambda's code is read-only)"


def test_layer_holds_exactly_the_locked_versions(shipped_build: Path) -> None:
    locked = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", LOCK.read_text(), re.M))
    locked = {_norm(k): v for k, v in locked.items()}
    installed = {}
    for info in layer(shipped_build).glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        installed[_norm(name)] = version
    assert installed == locked


def test_lock_pins_and_hashes_every_requirement() -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n\n")[-1].strip())
    entries = [e for e in entries if not e.startswith("#")]
    assert entries
    for entry in entries:
        assert re.match(r"^[A-Za-z0-9_.-]+==[0-9][^\s]*", entry), entry
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry
        name = _norm(entry.split("==")[0])
        assert name not in {_norm(n) for n in (*RUNTIME_PROVIDED, "python-dateutil")}, name


def test_layer_carries_what_the_functions_import_and_nothing_else(shipped_build: Path) -> None:
    root = layer(shipped_build)
    entries = sorted((shipped_build / lid / "app.py") for lid in functions())
    reached, missing = closure(entries, root)
    assert not missing, (
        f"functions import {sorted(missing)}, which the layer lacks: add them to LAYER_MODULES in "
        "layers/autojoin/Makefile"
    )
    package = root / "autojoin"
    for gone in NEVER_SHIPPED:
        assert not (package / gone).exists(), f"autojoin/{gone} must not ship"
    # every entry of the include list (a top-level module, or a package of autojoin / autojoin.adapters)
    # is used by some function
    for parent in (package, package / "adapters"):
        for entry in parent.iterdir():
            if entry.name in {"__pycache__", "py.typed", "__init__.py"}:
                continue
            dotted = ".".join(entry.relative_to(root).with_suffix("").parts)
            assert any(m == dotted or m.startswith(dotted + ".") for m in reached), (
                f"{dotted} ships but no function imports it: drop it from LAYER_MODULES"
            )


@pytest.mark.parametrize("lid", sorted(functions()))
def test_each_function_is_its_handler_and_bytecode_only(shipped_build: Path, lid: str) -> None:
    built = shipped_build / lid
    files = sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    sources = [f for f in files if f.endswith(".py")]
    assert "app.py" in sources
    assert set(files) == {*sources, *(f"__pycache__/{Path(s).stem}.cpython-312.pyc" for s in sources)}


def test_runtime_sdk_list_matches_what_the_benchmark_links() -> None:
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench_cold_start.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert tuple(bench.RUNTIME_PACKAGES) == RUNTIME_PROVIDED
