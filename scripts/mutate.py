"""make mutate: mutation testing (mutmut 3) of the files listed in pyproject.toml [tool.autojoin.mutate].

Why a staging directory: mutmut 3 copies the sources into ``mutants/`` and names each mutant by its file's
path, expecting the package at ``./``, ``src/`` or ``source/``. autojoin lives at layers/autojoin/autojoin
(installed editable through a .pth path), so the sources are staged as build/mutate/src/autojoin, where
mutmut's mutated copy is imported ahead of the editable install and its names match the modules the tests
import (``autojoin.services.launch``). Tests, handlers, template, scenarios and events are staged beside it
(the tests find them relative to their own path). The pytest settings (``--import-mode=importlib``,
``pythonpath = ["."]``) are kept as they are.

One file at a time, each in its own staging directory (build/mutate/<file>/, so ``--retest`` works on any
file swept before), ``nice -n 19``, ``--max-children`` from ``--jobs`` (default 1). Each file has its own test
selection (``[tool.autojoin.mutate.tests_for]``, else ``tests``): the unit tests of the code that runs it, not
the slow local-cloud tests; a narrower selection can only kill fewer mutants, never more. Within it, each
mutant runs only the tests that called its function when mutmut collected its stats, stopping at the first
failure; a mutant that costs more than (its tests' clean time + ``timeout_constant``) x
``timeout_multiplier`` x 2 CPU seconds is a timeout (killed). Then a report per file:
killed / total, the kill rate with documented equivalents (tests/mutation/equivalents.txt) left out, and
every undocumented survivor with its diff. Each file's outcome is kept in build/mutate-results/, so the
report covers every listed file, whichever were run this time. Exit 1 when a file is below the target,
has no results yet, or has an undocumented survivor.

    python scripts/mutate.py                  # every listed file
    python scripts/mutate.py events.py        # only files whose path ends with this
    python scripts/mutate.py --report-only    # the report from the last run's results
    python scripts/mutate.py --retest         # only the survivors again, after adding tests
    python scripts/mutate.py --collect F      # keep what an interrupted run of F checked (partial)
    python scripts/mutate.py --jobs 2 F       # two mutmut workers (still nice -n 19)
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "build" / "mutate"
RESULTS = REPO / "build" / "mutate-results"  # one JSON per file, kept across runs of other files
PACKAGE = REPO / "layers" / "autojoin" / "autojoin"
EQUIVALENTS = REPO / "tests" / "mutation" / "equivalents.txt"
STAGED_BESIDE = ["tests", "functions", "template.yaml", "scenarios", "events"]
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


@dataclass
class FileResult:
    path: str
    status: dict[str, str] = field(default_factory=dict)  # mutant name -> status
    survivors: list[tuple[str, str]] = field(default_factory=list)  # (name, diff) not documented
    equivalent: list[str] = field(default_factory=list)

    @property
    def unchecked(self) -> int:
        return sum(s == "not checked" for s in self.status.values())

    @property
    def total(self) -> int:
        return len(self.status) - self.unchecked

    @property
    def killed(self) -> int:
        return sum(s in KILLED for s in self.status.values())

    def rate(self, *, without_equivalents: bool) -> float:
        total = self.total - (len(self.equivalent) if without_equivalents else 0)
        return 100.0 if total <= 0 else 100.0 * self.killed / total


def settings() -> dict[str, object]:
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())
    mutate: dict[str, object] = conf["tool"]["autojoin"]["mutate"]
    return mutate


def stage_of(path: str) -> Path:
    """build/mutate/<file>: one staging directory per file (its mutants, mutmut's stats and its results)."""
    return STAGE / path.replace("/", ".")


def tests_for(path: str, conf: dict[str, object]) -> list[str]:
    """The file's own selection from ``[tool.autojoin.mutate.tests_for]`` (a key is a file or a glob),
    else the default ``tests``."""
    table: dict[str, list[str]] = conf.get("tests_for", {})  # type: ignore[assignment]
    for key, selection in table.items():
        if fnmatch.fnmatch(path, key):
            return [str(t) for t in selection]
    return [str(t) for t in conf["tests"]]  # type: ignore[attr-defined]


def stage(path: str, tests: list[str], conf: dict[str, object]) -> None:
    """build/mutate/<file>: src/autojoin + what the tests read, and a pyproject.toml for mutmut."""
    where = stage_of(path)
    if where.exists():
        shutil.rmtree(where)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(PACKAGE, where / "src" / "autojoin", ignore=ignore)
    for name in STAGED_BESIDE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, where / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, where / name)
    pyproject = (REPO / "pyproject.toml").read_text()
    selection = ", ".join(json.dumps(t) for t in tests)
    also = ", ".join(json.dumps(n) for n in STAGED_BESIDE if n != "tests")
    multiplier = float(conf.get("timeout_multiplier", 5.0))  # type: ignore[arg-type]
    constant = float(conf.get("timeout_constant", 3.0))  # type: ignore[arg-type]
    pyproject += (
        "\n[tool.mutmut]\n"
        'source_paths = ["src/autojoin"]\n'
        f"only_mutate = [{json.dumps(f'src/autojoin/{path}')}]\n"
        f"also_copy = [{also}]\n"
        f"pytest_add_cli_args_test_selection = [{selection}]\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:randomly", "-q"]\n'
        # a mutant that loops for ever (SimClock sleeps cost no time) is a kill once it costs more CPU
        # than (clean time + constant) x multiplier x 2; mutmut's default 15x spends minutes per such
        # mutant on 2 shared cores. CPU time, not wall time: a loaded machine does not fake a timeout.
        f"timeout_multiplier = {multiplier}\n"
        f"timeout_constant = {constant}\n"
    )
    (where / "pyproject.toml").write_text(pyproject)


def refresh_tests(path: str) -> None:
    """--retest: the current tests into the file's staged copy and mutmut's own copy; the sources stay as
    staged, so the mutant names (and mutmut's record of which tests call what) stay valid."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for where in (stage_of(path), stage_of(path) / "mutants"):
        shutil.rmtree(where / "tests", ignore_errors=True)
        shutil.copytree(REPO / "tests", where / "tests", ignore=ignore)


def not_killed(path: str) -> list[str]:
    """The file's undocumented survivors (documented equivalents are not run again: no test can kill them)."""
    saved_file = RESULTS / (path.replace("/", ".") + ".json")
    if not saved_file.exists():
        return []
    saved: dict[str, dict[str, str]] = json.loads(saved_file.read_text())
    skip = KILLED | {"not checked"}
    equivalent = set(results(path, load_equivalents()).equivalent)
    return [name for name, entry in saved.items() if entry["status"] not in skip and name not in equivalent]


def module_of(path: str) -> str:
    return "autojoin." + path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def run_mutmut(path: str, names: list[str] | None = None, *, jobs: int = 1) -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    env = {**os.environ, "HYPOTHESIS_PROFILE": "mutate", "PYTHONDONTWRITEBYTECODE": "1"}
    which = names if names is not None else [f"{module_of(path)}.*"]
    cmd = ["nice", "-n", "19", str(mutmut), "run", "--max-children", str(jobs), *which]
    print(f"[mutate] {path}: {len(which)} name(s): {' '.join(which)[:300]}", flush=True)
    return subprocess.run(cmd, cwd=stage_of(path), env=env, check=False).returncode


def load_equivalents() -> list[tuple[str, str]]:
    """(function prefix, mutated line) pairs: ``module.function | + the line as mutmut rewrote it``."""
    out = []
    for line in EQUIVALENTS.read_text().splitlines():
        if not line.strip() or line.startswith("#") or " | " not in line:
            continue
        key, _, rest = line.partition(" | ")
        mutated, _, _why = rest.partition(" || ")
        out.append((key.strip(), _norm(mutated)))
    return out


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def diff_of(path: str, name: str) -> str:
    """The mutant's changed lines, read in-process (``mutmut show`` per survivor costs a second of CPU)."""
    try:
        from mutmut.mutation.diff_apply import get_diff_for_mutant

        here = Path.cwd()
        os.chdir(stage_of(path))
        try:
            shown = get_diff_for_mutant(name, path=Path("src/autojoin") / path)
        finally:
            os.chdir(here)
    except Exception:  # another mutmut version: ask its command line
        mutmut = Path(sys.executable).with_name("mutmut")
        shown = subprocess.run(
            [str(mutmut), "show", name], cwd=stage_of(path), capture_output=True, text=True, check=False
        ).stdout
    changed = [ln for ln in shown.splitlines() if ln.startswith(("-", "+")) and ln[:3] not in {"---", "+++"}]
    return "\n".join(changed)


def save_results(path: str, only: list[str] | None = None) -> None:
    """Keep one file's outcome (status per mutant, diffs of the survivors) beside the staging directory, so
    a later run of another file does not lose it."""
    from mutmut.stats import status_by_exit_code  # only where mutmut is installed

    meta = stage_of(path) / "mutants" / "src" / "autojoin" / f"{path}.meta"
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    saved_file = RESULTS / (path.replace("/", ".") + ".json")
    saved: dict[str, dict[str, str]] = {}
    if only is not None and saved_file.exists():  # --retest: update the retested mutants only
        saved = json.loads(saved_file.read_text())
        codes = {name: code for name, code in codes.items() if name in only}
    for name, code in sorted(codes.items()):
        status = status_by_exit_code[code]
        keep_diff = status not in KILLED and status != "not checked"
        saved[name] = {"status": status, "diff": diff_of(path, name) if keep_diff else ""}
    RESULTS.mkdir(parents=True, exist_ok=True)
    saved_file.write_text(json.dumps(saved, indent=1, ensure_ascii=False))


def plain_name(name: str) -> str:
    """mutmut's mangled name as a dotted path: ``m.xǁClsǁmeth__mutmut_3`` -> ``m.Cls.meth__mutmut_3``,
    ``m.x_func__mutmut_1`` -> ``m.func__mutmut_1``."""
    module, _, mangled = name.rpartition(".")
    if mangled.startswith("xǁ"):
        mangled = mangled[2:].replace("ǁ", ".")
    elif mangled.startswith("x_"):
        mangled = mangled[2:]
    return f"{module}.{mangled}"


def results(path: str, equivalents: list[tuple[str, str]]) -> FileResult:
    saved_file = RESULTS / (path.replace("/", ".") + ".json")
    result = FileResult(path)
    if not saved_file.exists():
        return result
    saved: dict[str, dict[str, str]] = json.loads(saved_file.read_text())
    for name, entry in saved.items():
        status, diff = entry["status"], entry["diff"]
        result.status[name] = status
        if status in KILLED or status == "not checked":
            continue
        plain = plain_name(name)
        added = [_norm(ln[1:]) for ln in diff.splitlines() if ln.startswith("+")]
        if not added:  # a mutant that only deletes (an argument, a line) is named by "- <deleted line>"
            added = [_norm("- " + ln[1:]) for ln in diff.splitlines() if ln.startswith("-")]
        if any(plain.startswith(key) and mutated in added for key, mutated in equivalents):
            result.equivalent.append(name)
        else:
            result.survivors.append((f"{name} ({status})", diff))
    return result


def report(found: list[FileResult], target: float) -> bool:
    ok = True
    head = f"{'file':32} {'killed':>7} {'checked':>8} {'mutants':>8} {'rate':>7} {'equiv':>6}"
    lines = ["", f"{head} {'w/o equiv':>10}"]
    for r in found:
        adjusted = r.rate(without_equivalents=True)
        bad = adjusted < target or bool(r.survivors) or r.total == 0 or r.unchecked > 0
        ok &= not bad
        flag = "  <-- below target, undocumented survivors or not (fully) run" if bad else ""
        if r.unchecked:
            flag += f" (PARTIAL: {r.unchecked} not checked)"
        lines.append(
            f"{r.path:32} {r.killed:7} {r.total:8} {len(r.status):8} "
            f"{r.rate(without_equivalents=False):6.1f}% {len(r.equivalent):6} {adjusted:9.1f}%{flag}"
        )
    for r in found:
        for name, diff in r.survivors:
            lines += ["", f"SURVIVOR {name}", diff]
    text = "\n".join(lines) + "\n"
    print(text)
    STAGE.mkdir(parents=True, exist_ok=True)
    (STAGE / "report.txt").write_text(text)
    verdict = "met" if ok else "NOT met"
    print(f"[mutate] report: {STAGE / 'report.txt'}; target {target:.0f}% per file: {verdict}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="run only the listed files whose path ends with one of these")
    parser.add_argument("--report-only", action="store_true", help="report the last run without running")
    parser.add_argument(
        "--retest",
        action="store_true",
        help="re-run only the last run's survivors, against the current tests (sources unchanged since)",
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="keep what an interrupted run of the listed files checked, without running (a partial result)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutmut workers (--max-children); default 1")
    args = parser.parse_args()
    conf = settings()
    files = [str(f) for f in conf["files"]]  # type: ignore[attr-defined]
    target = float(conf.get("target", 90))  # type: ignore[arg-type]
    chosen = [f for f in files if not args.only or any(f.endswith(o) for o in args.only)]
    if not chosen:
        print(f"error: none of {args.only} is in [tool.autojoin.mutate] files", file=sys.stderr)
        return 2
    if args.retest:
        for path in chosen:
            names = not_killed(path)
            if names and not (stage_of(path) / "mutants" / "src" / "autojoin" / f"{path}.meta").exists():
                print(f"error: {path} is not staged now: run make mutate FILES={path}", file=sys.stderr)
                return 2
            if names:
                refresh_tests(path)
                code = run_mutmut(path, names, jobs=args.jobs)
                save_results(path, only=names)
                if code != 0:
                    print(f"error: mutmut stopped with exit code {code} on {path}", file=sys.stderr)
                    return 2
    elif args.collect:
        for path in chosen:
            if (stage_of(path) / "mutants" / "src" / "autojoin" / f"{path}.meta").exists():
                save_results(path)
    elif not args.report_only:
        for path in chosen:
            stage(path, tests_for(path, conf), conf)
            code = run_mutmut(path, jobs=args.jobs)
            save_results(path)  # also after an interruption: what was checked is kept, the rest "not checked"
            if code != 0:
                print(f"error: mutmut stopped with exit code {code} on {path}", file=sys.stderr)
                return 2
    equivalents = load_equivalents()
    return 0 if report([results(f, equivalents) for f in files], target) else 1


if __name__ == "__main__":
    sys.exit(main())
