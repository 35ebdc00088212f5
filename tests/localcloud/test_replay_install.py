"""`pip install .` (no extras) gives a working `autojoin replay` and `autojoin simulate`, run from outside
the repository; the declared runtime dependencies are exactly what the code imports.

How the install test stays fast and still honest:

- ``test_declared_dependencies_are_exactly_what_the_code_imports`` reads every import of the package and
  of the handlers (not those under ``if TYPE_CHECKING``) and checks pyproject's ``dependencies`` both ways;
- ``test_pip_install_then_replay_and_simulate_from_elsewhere`` makes a fresh venv whose only third-party
  packages are the declared dependencies and what they require (resolved from their metadata, extras
  included, and linked in from this checkout's .venv rather than downloaded), then really runs
  ``pip install --no-deps --no-build-isolation`` of the checkout into it and runs both commands from a
  temporary directory. A runtime dependency missing from pyproject (aws-sam-translator was dev-only) is
  absent there and the commands fail. ``make check-install`` does the slow variant: pip resolves and
  installs everything itself.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "layers" / "autojoin" / "autojoin"
PROJECT = PACKAGE / "project"


def _declared() -> list[Requirement]:
    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [Requirement(r) for r in doc["project"]["dependencies"]]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_imports(path: Path) -> set[str]:
    """Top-level modules ``path`` imports, leaving out imports under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for b in node.body for n in ast.walk(b))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_declared_dependencies_are_exactly_what_the_code_imports() -> None:
    sources = [*PACKAGE.rglob("*.py"), *(REPO / "functions").glob("*/app.py")]
    imported = set().union(*(_runtime_imports(p) for p in sources))
    third_party = {
        m for m in imported if m not in sys.stdlib_module_names and m not in {"autojoin", "__future__"}
    }
    providers = metadata.packages_distributions()
    unknown = sorted(m for m in third_party if m not in providers)
    assert not unknown, f"imported but installed by no distribution: {unknown}"
    needed = {_norm(providers[m][0]) for m in third_party}
    declared = {_norm(r.name) for r in _declared()}
    assert needed - declared == set(), f"imported but not declared in pyproject: {sorted(needed - declared)}"
    assert declared - needed == set(), f"declared but never imported: {sorted(declared - needed)}"


def test_the_packaged_project_is_the_repository_s() -> None:
    """autojoin/project/ is what replay and simulate use outside the repository: `make sync-project`."""
    shipped = {
        p.relative_to(PROJECT) for p in PROJECT.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    wanted = {Path("template.yaml")} | {p.relative_to(REPO) for p in (REPO / "functions").glob("*/app.py")}
    assert shipped == wanted
    for rel in wanted:
        assert (PROJECT / rel).read_bytes() == (REPO / rel).read_bytes(), (
            f"{rel} differs: run make sync-project"
        )


def _closure(requirements: list[Requirement]) -> set[str]:
    """The distributions ``requirements`` need, transitively, as installed here (markers and extras)."""
    seen: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        if req.marker is not None and not any(
            req.marker.evaluate({"extra": e}) for e in (extras or {""}) | {""}
        ):
            continue
        name = _norm(req.name)
        dist = metadata.distribution(name)
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras | {""}):
                todo.append((Requirement(str(sub).split(";")[0]), frozenset(sub.extras)))
    return {k.split("[")[0] for k in seen}


def _link_distribution(name: str, into: Path) -> None:
    dist = metadata.distribution(name)
    site = Path(str(dist.locate_file("")))
    tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
    for top in tops:
        source = site / top
        if source.exists() and not (into / top).exists():
            (into / top).symlink_to(source)


def test_pip_install_then_replay_and_simulate_from_elsewhere(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    deps = tmp_path / "deps"
    deps.mkdir()
    for name in [*sorted(_closure(_declared())), "setuptools", "wheel"]:  # + the build backend
        _link_distribution(name, deps)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "declared-deps.pth").write_text(f"{deps}\n")
    build = tmp_path / "src"
    shutil.copytree(
        REPO, build, ignore=shutil.ignore_patterns(".venv", ".git", "*cache*", "build", "*.egg-info")
    )
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(build),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(REPO / "events" / "autoscaling_launch_worker.json", work / "event.json")
    shutil.copy(REPO / "scenarios" / "seed-2-2-1-survives-az-loss.yaml", work / "scenario.yaml")
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AUTOJOIN_CACHE_DIR": str(tmp_path / "cache"),
        "LANG": "C.UTF-8",
    }
    autojoin = str(venv / "bin" / "autojoin")
    where = subprocess.run(
        [str(python), "-c", "import autojoin; print(autojoin.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(purelib), where  # the installed copy, not the checkout
    replayed = subprocess.run(
        [autojoin, "replay", "event.json", "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    assert '"outcome": "joined"' in replayed.stdout
    simulated = subprocess.run(
        [autojoin, "simulate", "scenario.yaml"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    # it ran to a verdict (0: every expectation held, 1: one failed; the scenario's business, not ours)
    assert simulated.returncode in {0, 1}, (simulated.stdout[-2000:], simulated.stderr[-3000:])
    assert "final cluster" in simulated.stdout and "Traceback" not in simulated.stderr
