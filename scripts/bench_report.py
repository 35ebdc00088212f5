"""The report of ``make bench`` (scripts/bench.py): docs/benchmarks.md, docs/benchmarks.json and the plots
docs/img/bench-*.png, from the pieces' JSON. Only formats: every number comes from a piece's JSON; a piece
that did not run or failed says so in its section (never a number in its place).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

IMG = "img"  # under docs/
BIG = 50_000  # a piece's JSON key larger than this (characters) stays in build/bench only


def _fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _missing(entry: dict[str, Any] | None) -> str | None:
    """Why a piece has no figures, or None when it has."""
    if entry is None:
        return "**Not run** in this `make bench` (left out with `--only`)."
    if "data" not in entry:
        why = str(entry.get("why", "")).strip().replace("\n", " ")[-500:]
        return f"**{entry['status'].capitalize()}**: {why}"
    return None


class Plots:
    """matplotlib (Agg) plots written to docs/img; ``enabled=False`` writes none."""

    def __init__(self, folder: Path, enabled: bool) -> None:
        self.folder, self.enabled, self.written = folder, enabled, []
        if enabled:
            import matplotlib

            matplotlib.use("Agg")

    def bars(
        self,
        name: str,
        title: str,
        labels: list[str],
        series: dict[str, list[float]],
        ylabel: str,
        *,
        line: tuple[float, str] | None = None,
        log: bool = False,
    ) -> str:
        if not self.enabled or not labels:
            return ""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(min(12.0, max(6.0, 0.45 * len(labels) * max(1, len(series)))), 4.5))
        width = 0.8 / max(1, len(series))
        for k, (key, values) in enumerate(series.items()):
            xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
            ax.bar(xs, values, width, label=key)
        if line is not None:
            ax.axhline(line[0], color="black", linestyle="--", linewidth=1, label=line[1])
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(
            labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center"
        )
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize="small")
        fig.tight_layout()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"bench-{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        self.written.append(path)
        return f"\n![{title}]({IMG}/{path.name})\n"


def _cold_start(e: dict[str, Any], plots: Plots) -> str:
    d = e["data"]
    fns = d["functions"]
    rows = [
        [
            n,
            f"{f['bytes'] / 1024:,.0f}",
            f["boto3_ms"],
            f["import_ms"],
            f"{f['import_ratio']:.2f}x",
            f["first_call_ms"],
            f"{f['first_call_ratio']:.2f}x",
        ]
        for n, f in fns.items()
    ]
    text = (
        f"Each built handler imported in a fresh interpreter as Lambda does (the function's folder, the "
        f"layer, the runtime's boto3), paired with a fresh `import boto3`; median of {d['runs']} pairs. "
        f"Build: `{Path(d['build_dir']).name}` (this machine's architecture and Python). Layer: "
        f"**{d['layer_bytes'] / 1e6:,.1f} MB** unzipped.\n\n"
    )
    text += _table(
        ["function", "size KB", "import boto3 ms", "import ms", "ratio", "first call ms", "ratio"], rows
    )
    text += (
        f"\n\nWorst import ratio: **{d['worst_import_ratio']:.2f}x** `import boto3` (the script's limit: "
        f'{d["max_ratio"]}x). "First call" adds the first invocation with an empty event (the lazily '
        "loaded modules).\n"
    )
    text += plots.bars(
        "cold-start",
        "Cold start as a ratio to `import boto3`",
        list(fns),
        {
            "import": [f["import_ratio"] for f in fns.values()],
            "first call": [f["first_call_ratio"] for f in fns.values()],
        },
        "x import boto3",
        line=(1.0, "import boto3"),
    )
    return text


def _calls(e: dict[str, Any], plots: Plots) -> str:
    events = e["data"]["events"]
    rows = []
    for name, ev in events.items():
        cold, warm = ev.get("cold"), ev.get("warm")
        rows.append(
            [
                name,
                ev["function"],
                f"{cold['minimum']} / {cold['calls']}" if cold else "—",
                f"{warm['minimum']} / {warm['calls']}" if warm else "—",
            ]
        )
    text = (
        "Counted by a botocore `before-parameter-build` hook on the session the local cloud builds for its "
        "functions: every API call a handler makes, once per call, for the invocation that made it (the "
        "simulated node agent's own calls are not counted). A cluster of 3 managers and 2 workers; one "
        "round of events with every invocation in a new execution environment (cold), a warm-up round, then "
        "the same round warm. Cells: **minimum the job needs / calls made** (the median invocation).\n\n"
    )
    text += _table(["event", "function", "cold: min / made", "warm: min / made"], rows)
    text += "\n\n### Every call above the minimum, and why\n\n"
    for name, ev in events.items():
        text += f"**{name}** (`{ev['function']}`). Minimum: "
        need = ev.get("needed") or {}
        text += "; ".join(f"`{op}` ({why})" for op, why in need.items()) or "none recorded"
        text += ".\n\n"
        seen: dict[str, str] = {}
        for temp in ("cold", "warm"):
            t = ev.get(temp)
            if not t:
                continue
            for op, x in t["above_minimum"].items():
                seen.setdefault(op, "")
                seen[op] += f"{temp} +{x['extra_calls']} "
                seen[op + "\0why"] = x["why"]
        ops = sorted(k for k in seen if "\0" not in k)
        for op in ops:
            text += f"- `{op}` ({seen[op].strip()}): {seen[op + chr(0) + 'why']}\n"
        text += "\n" if ops else "No call above the minimum.\n\n"
    names = list(events)
    text += plots.bars(
        "calls",
        "AWS calls per event: minimum vs made",
        names,
        {
            "minimum (cold)": [events[n]["cold"]["minimum"] if events[n].get("cold") else 0 for n in names],
            "cold": [events[n]["cold"]["calls"] if events[n].get("cold") else 0 for n in names],
            "warm": [events[n]["warm"]["calls"] if events[n].get("warm") else 0 for n in names],
        },
        "AWS API calls per invocation",
    )
    return text


def _policy(e: dict[str, Any], plots: Plots) -> str:
    d = e["data"]
    cases = d["cases"]
    rows = [
        [
            name,
            f"{c['input_bytes'] / 1e6:.2f}",
            c["parse_ms"],
            c["decide_ms"],
            f"{c['ratio']:.2f}x",
            c["allowed"],
            "yes" if c["parse_ms"] + c["decide_ms"] < d["aws_budget_ms"] else "**no**",
        ]
        for name, c in cases.items()
    ]
    text = (
        f"The custom termination policy's decision with **{d['instances']:,} offered instances**, as a "
        "ratio to parsing that input (`json.loads`, what the runtime does before the handler); best of "
        f"{d['repeat']}. AWS gives the function {d['aws_budget_ms']:,} ms. Snapshot item read: "
        f"{d['snapshot_bytes']:,} bytes.\n\n"
    )
    text += _table(
        [
            "group",
            "input MB",
            "parse ms",
            "decide ms",
            "decide / parse",
            "allowed",
            "parse + decide < 2 s here",
        ],
        rows,
    )
    text += "\n" + plots.bars(
        "policy",
        f"Termination policy at {d['instances']:,} instances",
        list(cases),
        {
            "parse": [c["parse_ms"] for c in cases.values()],
            "decide": [c["decide_ms"] for c in cases.values()],
        },
        "ms (log)",
        line=(float(d["aws_budget_ms"]), "AWS limit 2 s"),
        log=True,
    )
    return text


def _token_reads(r: dict[str, Any]) -> str:
    """GetSecretValue against the pool's size; when the burst outlasted the token cache's age limit, what
    each environment read (once per period is the cache doing its job)."""
    calls, pool = r["get_secret_value_calls"], r["pool"]
    text = f"{calls} (≤ {pool}: {'yes' if calls <= pool else '**no**'}"
    per_env, age = r.get("get_secret_value_per_environment"), r.get("token_max_age_s")
    if calls > pool and per_env and age:
        periods = math.ceil(r["handling_s"] / age)
        text += (
            f"; at most {max(per_env)} per environment over {r['handling_s']:.0f} s, "
            f"{periods} periods of the {age} s token cache"
        )
    return text + ")"


def _pool(e: dict[str, Any], plots: Plots) -> str:
    d = e["data"]
    rows = []
    for key in ("pool", "single"):
        r = d[key]
        rows.append(
            [
                f"{r['pool']} environment(s)",
                r["launches"],
                r["handled"],
                r["errors"],
                r["workers_in_swarm"] - 2,
                r["lifecycle"].get("CONTINUE", 0),
                _token_reads(r),
                r["launches_per_s"],
                f"{r['handling_s'] / d['boto3_import_s']:.0f}x",
            ]
        )
    p = d["pool"]
    text = (
        f"**{p['launches']:,} worker launches at once to {p['pool']} handler environments.** "
        "The local cloud runs each function as one warm environment, serially (localcloud/lambdas.py), so it "
        "does not model Lambda's concurrent execution environments. scripts/bench_pool.py models them: the "
        "worker group is scaled out at once, the launch lifecycle events are held, then a pool of threads — "
        "each one environment with its own boto3 session and composition root (token cache, clients, "
        "idempotency layer), cold on its first event — takes them from one queue; the local cloud then "
        "runs until idle, the completions putting the instances in service"
        + (
            f" (with the reconciler's rules, {', '.join(p['rules_off_after_burst'])}, switched off first: "
            "each launch result would set off a reconcile that reads the whole group, the reconciler's work, "
            "counted per event above, not the burst's; settling took "
            f"{_fmt(p.get('settle_s'), 1)} s)"
            if p.get("rules_off_after_burst")
            else ""
        )
        + ". Same process, side by side: the pool, then a single environment (with fewer "
        "launches when the run says so: each launch's work grows with the group's size, so the single "
        "environment's launches/s at a smaller burst flatters it, never the pool).\n\n"
    )
    text += _table(
        [
            "run",
            "launches",
            "handled",
            "errors",
            "joined",
            "CONTINUE",
            "GetSecretValue",
            "launches/s",
            "handling time / import boto3",
        ],
        rows,
    )
    ratio = d.get("throughput_ratio_pool_vs_single")
    text += (
        f"\n\nAll joined with the pool: **{'yes' if p['all_joined'] else 'no'}**; throughput of the pool "
        f"as a ratio to one environment: **{_fmt(ratio, 2)}x**. Python threads share one interpreter lock "
        "and the local cloud is in-process CPU work, so the ratio shows the cost of contention (and that "
        "concurrent environments stay correct), not the parallelism Lambda would give.\n"
    )
    text += plots.bars(
        "pool",
        f"Launches handled by each of {p['pool']} environments",
        [f"env {k}" for k in range(p["pool"])],
        {"launches": [float(x) for x in p["per_environment"]]},
        "launches",
    )
    return text


def _replay(replay: dict[str, Any] | None, burst: dict[str, Any] | None, plots: Plots) -> str:
    text = ""
    labels: list[str] = []
    ratios: list[float] = []
    why = _missing(replay)
    if why:
        text += f"Replay and simulate: {why}\n\n"
    else:
        assert replay is not None
        d = replay["data"]
        rows = [
            [v["command"], v["first"], v["median"], f"{v['ratio']:.1f}x"] for k, v in d.items() if k != "runs"
        ]
        text += (
            f"Fresh processes as a user runs them, median of {d['runs']['each']} (the first run fills the "
            "template cache).\n\n"
        )
        text += _table(["command", "first s", "median s", "ratio to import boto3"], rows) + "\n\n"
        for k in ("replay", "simulate"):
            if k in d:
                labels.append(k)
                ratios.append(d[k]["ratio"])
    why = _missing(burst)
    if why:
        text += f"200-launch scenario: {why}\n"
    else:
        assert burst is not None
        b = burst["data"]
        text += (
            f"`autojoin simulate {b['scenario']}`: passed **{b['passed']}**, workers {b['workers']}, "
            f"lifecycle {b['lifecycle']}; **{b['cpu_s']:.1f} CPU s** (wall {b['wall_s']:.1f} s) = "
            f"**{b['ratio_cpu']:.0f}x** the CPU time of `python -c 'import boto3'`.\n"
        )
        labels.append(Path(b["scenario"]).stem)
        ratios.append(b["ratio_cpu"])
    text += plots.bars(
        "replay",
        "Replay and simulate as a ratio to import boto3",
        labels,
        {"x import boto3": ratios},
        "x import boto3",
        log=True,
    )
    return text


def _swarm(e: dict[str, Any], plots: Plots) -> str:
    d = e["data"]
    s = d.get("summary", {})
    bare = s.get("bare", {}).get("median_ms")
    rows = [
        [path, v["n"], v["median_ms"], v["max_ms"], f"{v['median_ms'] / bare:.1f}x" if bare else "—"]
        for path, v in s.items()
    ]
    text = (
        f"A real Docker Swarm lab (dockerd per node in network namespaces): {d['managers']} managers, "
        f'{d["workers"]} workers over zones {", ".join(d["zones"])}. "handler": the real on_launch '
        "handler on the local cloud joins the node (idempotency, lookups, token, hand-off, agent join, "
        'Ready, labels, CONTINUE); "autojoin": the agent path alone; "bare": `docker swarm join` with '
        "the token in hand.\n\n"
    )
    text += _table(["path", "joins", "median ms", "max ms", "median / bare"], rows)
    text += (
        f"\n\n- Quorum loss ({d['quorum_loss_how']} {d['managers_lost']}/{d['managers_total']} managers): "
        f"autojoin's orchestrator view reported no leader after **{_fmt(d.get('quorum_loss_detect_s'))} s**; "
        f"a leader was back {_fmt(d.get('leader_back_s'))} s after they returned.\n"
    )
    if d.get("guard_5_to_3_s") is not None:
        text += (
            f"- Guarded 5 → 3 managers (termination policy, on_terminate and the guard's pass each simulated "
            f"minute, every demotion awaited on the real swarm): **{d['guard_5_to_3_s']} s** wall, "
            f"{d['guard_5_to_3_minutes']} guard passes, final layout {d['guard_5_to_3_layout']}.\n"
        )
    else:
        text += "- Guarded 5 → 3: not measured in this run.\n"
    for note in d.get("notes", []):
        text += f"- note: {note}\n"
    text += plots.bars(
        "swarm",
        "Join latency on the real swarm (median)",
        list(s),
        {"median ms": [v["median_ms"] for v in s.values()]},
        "ms",
    )
    return text


def _resilience(e: dict[str, Any] | None, out: Path) -> str:
    fragment = out / "resilience.md"
    if e is not None and e.get("status") == "not run":
        return f"**Not run**: {e.get('why')}.\n"
    if e is None or not fragment.is_file():
        why = _missing(e) if e is not None else None
        return (why or "**Not run** in this `make bench`.") + "\n"
    text = fragment.read_text(encoding="utf-8").strip()
    if text.startswith("## "):  # the fragment's own heading: the report has the section's
        text = text.partition("\n")[2].strip()
    text += "\n"
    if e.get("status") != "ok":
        text = f"**{e['status']}**: {e.get('why', '')}\n\n" + text
    return text


SECTIONS: list[tuple[str, str, Callable[[dict[str, Any], Plots], str]]] = [
    ("cold_start", "Cold start", _cold_start),
    ("calls", "AWS calls per event", _calls),
    ("policy", "Termination policy with many offered instances", _policy),
    ("pool", "Burst: worker launches at once to a pool of handler environments", _pool),
    ("swarm", "Real swarm (lab)", _swarm),
]


def _slim(data: Any) -> Any:
    """A piece's data without its very large keys (they stay in build/bench)."""
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for k, v in data.items():
        size = len(json.dumps(v))
        out[k] = v if size <= BIG else f"({size:,} characters: see build/bench)"
    return out


def _runs_note(meta: dict[str, Any]) -> list[str]:
    """When the report combines runs that ran side by side (``scripts/bench.py --combine``)."""
    runs = meta.get("runs")
    notes = [f"{n}" for n in meta.get("notes", [])]
    if not runs or len(runs) < 2:
        return [*notes, ""] if notes else []
    parts = [
        f"{r['started']} for {r['total_seconds'] / 60:.1f} min: {', '.join(r['pieces']) or 'nothing kept'}"
        for r in runs
    ]
    return [
        "The pieces ran in " + str(len(runs)) + " invocations of scripts/bench.py side by side on this "
        "machine (each ratio is taken within its own piece): " + "; ".join(parts) + ". The length above "
        "is the longest invocation's.",
        "",
        *[line for n in notes for line in (n, "")],
    ]


def write_report(doc: dict[str, Any], docs: Path, out: Path, *, plots: bool = True) -> list[Path]:
    """Write docs/benchmarks.md, docs/benchmarks.json and the plots; return the files written."""
    pieces = doc["pieces"]
    p = Plots(docs / IMG, plots)
    meta = doc["meta"]
    md = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (scripts/bench.py) on {meta['started']}: {meta['cpus']} CPUs "
        f"({meta['machine']}, shared; load average {meta['load_average_end']} at the end), Python "
        f"{meta['python']}. **`make bench` took {meta['total_seconds'] / 60:.1f} minutes** of measuring"
        f"{' (--quick: every piece at its smallest size)' if meta['quick'] else ''}. "
        "Every figure that depends on this machine is given as a ratio to something measured in the "
        "same run. Benchmarks assert nothing; tests/bench/test_bench_smoke.py runs a tiny version of each "
        "to keep the code working. Figures: [benchmarks.json](benchmarks.json).",
        "",
        *_runs_note(meta),
        "## Resilience against plain Auto Scaling",
        "",
        _resilience(pieces.get("resilience"), out),
    ]
    for key, title, fn in SECTIONS:
        md += [f"## {title}", ""]
        why = _missing(pieces.get(key))
        md.append(why + "\n" if why else fn(pieces[key], p))
        if key == "pool":
            md += ["## Replay and simulate", "", _replay(pieces.get("replay"), pieces.get("burst"), p)]
    md += [
        "## Reproduce",
        "",
        "`make bench` (installs the `bench` extra, builds the layer for this machine, runs everything). One "
        "piece: `.venv/bin/python scripts/bench.py --only calls` (pieces: resilience, cold_start, calls, "
        "policy, pool, replay, burst, swarm); every piece's own script takes `--json OUT`. Each piece's "
        "command line and how long it took:",
        "",
        _table(
            ["piece", "status", "seconds", "command"],
            [
                [k, v.get("status", "?"), v.get("seconds"), f"`{v.get('command', '')}`"]
                for k, v in pieces.items()
            ],
        ),
        "",
    ]
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "benchmarks.md").write_text("\n".join(md), encoding="utf-8")
    slim = {
        **doc,
        "pieces": {k: {**v, "data": _slim(v["data"])} if "data" in v else v for k, v in pieces.items()},
    }
    (docs / "benchmarks.json").write_text(json.dumps(slim, indent=1) + "\n", encoding="utf-8")
    return [docs / "benchmarks.md", docs / "benchmarks.json", *p.written]
