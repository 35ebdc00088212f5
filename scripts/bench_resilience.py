"""Resilience, the headline benchmark: seeded random timelines, each run as plain Auto Scaling and autojoin.

Every timeline is a chaos timeline (``autojoin.scenario.chaos.generate(seed, index)``: scale-out/-in of
both groups, crashes, a user's terminate, AZ outages and recoveries, instance refreshes, token rotations,
waits; then half an hour to settle). Each runs twice on the local cloud from the same document and seed:

- ``plain``: plain Auto Scaling (``autojoin.scenario.baseline``): AWS's default (AZ-balanced)
  termination policy, no terminate hook, no quorum guard, no reconciler, no dead-node cleanup. Nodes still
  join at launch through the same launch hook and function as autojoin's (standing in for a plain
  user-data join with a static token), so both arms join the same way;
- ``autojoin``: the stack as template.yaml makes it.

Sampled every simulated minute (``autojoin.scenario.resilience``): quorum held, survives losing any one
more AZ, Down voters, healthy managers out of place against the optimal layout; quorum losses are
attributed to scaling actions or to the world's blows. Writes ``OUT/resilience.json`` (figures, series,
per-timeline summaries), ``OUT/resilience.md`` (the fragment ``make bench`` puts in docs/benchmarks.md) and
``IMG/resilience-*.png`` (matplotlib, the ``bench`` extra). Asserts nothing.

    nice python scripts/bench_resilience.py [--timelines N] [--seed S] [--jobs J] [--out DIR] [--img DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Any

from autojoin.scenario.resilience import ARMS, SAMPLE_FIELDS, run_timeline

REPO = Path(__file__).resolve().parents[1]

DEFAULT_TIMELINES = 2000  # ~65 minutes of this 2-core machine with --jobs 2 (0.51 timelines/s measured)
PLOTS = (
    ("quorum", "Timelines with quorum (share)", "share of timelines whose swarm has a leader"),
    ("survives_az", "Timelines surviving the loss of any one more AZ (share)", "share of timelines"),
    ("down_voters", "Down voters (mean per timeline)", "managers in the swarm that are Down"),
    ("gap", "Healthy managers out of place (mean per timeline)", "managers to move to the optimal layout"),
)


# --- aggregation ------------------------------------------------------------------------------------


def _excluded(result: dict[str, Any]) -> str | None:
    """Why a timeline is left out of both arms' figures (None: it counts)."""
    for arm in ARMS:
        a = result["arms"][arm]
        if a["error"]:
            return f"{arm}: the local cloud failed: {a['error']}"
    if any(result["arms"][arm]["unsurvivable"] for arm in ARMS):
        return "a world blow no layout survives"
    return None


def _summary(a: dict[str, Any]) -> dict[str, Any]:
    rows = [dict(zip(SAMPLE_FIELDS, r, strict=True)) for r in a["samples"]]
    n = len(rows) or 1
    return {
        "scaling_losses": sum(1 for x in a["losses"] if x["cause"] == "scaling"),
        "world_losses": sum(1 for x in a["losses"] if x["cause"] == "world"),
        "quorum_share": sum(r["quorum"] for r in rows) / n,
        "survives_az_share": sum(r["survives_az"] for r in rows) / n,
        "mean_down_voters": sum(r["down_voters"] for r in rows) / n,
        "end_down_voters": rows[-1]["down_voters"] if rows else 0,
        "end_quorum": bool(rows[-1]["quorum"]) if rows else False,
        "mean_gap": sum(r["gap"] for r in rows) / n,
        "gap_share": sum(1 for r in rows if r["gap"] > 0) / n,
        "end_gap": rows[-1]["gap"] if rows else 0,
        "cpu_seconds": a["cpu_seconds"],
        "losses": a["losses"],
        "skipped": len(a["skipped"]),
    }


def _table(counted: list[dict[str, Any]], arm: str) -> dict[str, Any]:
    s = [t["summary"][arm] for t in counted]
    n = len(s)
    if not n:
        return {"timelines": 0}
    return {
        "timelines": n,
        "quorum_losses_by_scaling": sum(x["scaling_losses"] for x in s),
        "timelines_with_a_scaling_loss": sum(1 for x in s if x["scaling_losses"]),
        "quorum_losses_after_world_blows": sum(x["world_losses"] for x in s),
        "timelines_ending_without_quorum": sum(1 for x in s if not x["end_quorum"]),
        "time_with_quorum": mean(x["quorum_share"] for x in s),
        "time_surviving_any_one_az_loss": mean(x["survives_az_share"] for x in s),
        "down_voters_mean": mean(x["mean_down_voters"] for x in s),
        "down_voters_at_end_mean": mean(x["end_down_voters"] for x in s),
        "timelines_ending_with_down_voters": sum(1 for x in s if x["end_down_voters"]),
        "gap_mean": mean(x["mean_gap"] for x in s),
        "time_off_optimal_layout": mean(x["gap_share"] for x in s),
        "gap_at_end_mean": mean(x["end_gap"] for x in s),
        "cpu_seconds_per_timeline": mean(x["cpu_seconds"] for x in s),
    }


def _series(counted: list[dict[str, Any]], every: float) -> dict[str, Any]:
    """Per sample minute: the share/mean over every counted timeline. Timelines end at different times
    (the last step plus the settling time); after its end a timeline's last sample is carried forward (no
    step is left to change it), so every minute averages over all of them."""
    horizon = max((len(t["arms"][arm]["samples"]) for t in counted for arm in ARMS), default=0)
    out: dict[str, Any] = {"minutes": [i * every / 60 for i in range(horizon)]}
    for arm in ARMS:
        per: dict[str, list[float]] = {k: [] for k, *_ in PLOTS}
        cumulative: list[int] = []
        losses = sorted(x["at"] for t in counted for x in t["arms"][arm]["losses"] if x["cause"] == "scaling")
        for i in range(horizon):
            rows = [
                dict(zip(SAMPLE_FIELDS, samples[min(i, len(samples) - 1)], strict=True))
                for samples in (t["arms"][arm]["samples"] for t in counted)
                if samples
            ]
            for key, values in per.items():
                values.append(round(mean(float(r[key]) for r in rows), 4) if rows else 0.0)
            cumulative.append(sum(1 for at in losses if at <= i * every))
        out[arm] = {**per, "scaling_losses_so_far": cumulative}
    return out


# --- output -----------------------------------------------------------------------------------------


def _plots(series: dict[str, Any], img: Path, n: int) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    paths = []
    colours = {"plain": "#c0392b", "autojoin": "#2471a3"}
    labels = {"plain": "plain Auto Scaling", "autojoin": "autojoin"}
    for key, title, ylabel in PLOTS:
        fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=100)
        for arm in ARMS:
            ax.plot(series["minutes"], series[arm][key], label=labels[arm], color=colours[arm], lw=1.8)
        if key == "quorum":
            ax2 = ax.twinx()
            for arm in ARMS:
                ax2.step(
                    series["minutes"],
                    series[arm]["scaling_losses_so_far"],
                    where="post",
                    color=colours[arm],
                    ls=":",
                    lw=1.2,
                    label=f"{labels[arm]}: quorum losses caused by scaling (cumulative)",
                )
            ax2.set_ylabel("quorum losses by scaling (cumulative)")
            ax2.legend(loc="center right", fontsize=7)
            ax2.yaxis.get_major_locator().set_params(integer=True)
        if key in {"quorum", "survives_az"}:
            ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{title} — {n} timelines", fontsize=10)
        ax.set_xlabel("simulated minutes since the timeline started")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left" if key in {"down_voters", "gap"} else "center left", fontsize=8)
        fig.tight_layout()
        path = img / f"resilience-{key.replace('_', '-')}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _fragment(doc: dict[str, Any], plots: list[Path], img_rel: str) -> str:
    meta, table = doc["meta"], doc["table"]
    p, a = table["plain"], table["autojoin"]
    rows = [
        ("quorum losses caused by scaling actions", "quorum_losses_by_scaling", str),
        ("… timelines with at least one", "timelines_with_a_scaling_loss", str),
        ("quorum losses right after a world blow (context)", "quorum_losses_after_world_blows", str),
        ("timelines ending without quorum", "timelines_ending_without_quorum", str),
        ("share of time with quorum", "time_with_quorum", _pct),
        ("share of time surviving the loss of any one AZ", "time_surviving_any_one_az_loss", _pct),
        ("Down voters, mean over time", "down_voters_mean", lambda v: f"{v:.2f}"),
        ("Down voters left behind at the end (mean)", "down_voters_at_end_mean", lambda v: f"{v:.2f}"),
        ("timelines ending with Down voters", "timelines_ending_with_down_voters", str),
        ("healthy managers out of place, mean over time", "gap_mean", lambda v: f"{v:.2f}"),
        ("share of time off the optimal layout", "time_off_optimal_layout", _pct),
        ("managers out of place at the end (mean)", "gap_at_end_mean", lambda v: f"{v:.2f}"),
        ("CPU seconds per timeline (this machine)", "cpu_seconds_per_timeline", lambda v: f"{v:.1f}"),
    ]
    lines = [
        "## Resilience: autojoin against plain Auto Scaling",
        "",
        f"**{meta['counted']} seeded random timelines** (seed {meta['seed']}, timelines "
        f"{meta['first']}-{meta['first'] + meta['timelines'] - 1}), each run twice from the same document "
        "on the local cloud. "
        + (
            f"This run measured {meta['timelines']} timelines, not thousands: at "
            if meta["timelines"] < 1000
            else f"This run measured {meta['timelines']} timelines at "
        )
        + f"{meta['timelines_per_second']:.3f} timelines/s ({meta['jobs']} processes, both arms, "
        f"{meta['cpu_count']} CPUs shared with other work). For 2,000:",
        "",
        "```",
        f"nice .venv/bin/python scripts/bench_resilience.py --timelines 2000 --seed {meta['seed']} --jobs 2"
        f"   # about {2000 / max(meta['timelines_per_second'], 1e-9) / 3600:.1f} h at that rate",
        "```",
        "",
        "| | plain Auto Scaling | autojoin |",
        "|---|---:|---:|",
    ]
    for label, key, fmt in rows:
        lines.append(f"| {label} | {fmt(p[key])} | {fmt(a[key])} |")
    lines += [""]
    lines += [f"![{path.stem}]({img_rel}/{path.name})" for path in plots]
    lines += [
        "",
        "How it was measured:",
        "",
        "- Timelines: `autojoin.scenario.chaos.generate(seed, index)` — a healthy cluster (3 or 5 managers "
        "over three AZs, 0-4 workers), then 3-7 steps a few minutes apart: scale-out/-in of both groups, a "
        "crash (the leader or a worker), a user's terminate (no decrement), an AZ outage and its recovery, "
        "an instance refresh, a token rotation, a wait; every zone recovered; then "
        + (
            f"{meta['settle']:g} simulated seconds (--settle)"
            if isinstance(meta["settle"], float)
            else "30 simulated minutes"
        )
        + " to settle. No AWS fault injection.",
        "- Plain Auto Scaling (`autojoin.scenario.baseline.plain_auto_scaling`): the same stack with AWS's "
        "default termination policy (AZ balance first), no terminate lifecycle hook, no retention, no "
        "scale-in protection, and the rules reaching the terminate function (guard) and the reconciler "
        "(schedule, launch/terminate results) disabled: no guard, no reconciler, no dead-node cleanup. "
        "Nodes still join at launch through the same launch hook and OnLaunchFunction as autojoin's "
        "(standing in for a user-data join with a static token), so both arms join the same way.",
        "- Both arms apply the same steps at the same simulated times through the scenario runner's step "
        "code on the same World; only the stack's configuration differs.",
        f"- Sampled every {meta['sample_every']:.0f} simulated seconds. Quorum: the simulated swarm has "
        "a leader (it elects one only while a majority of ALL Raft voters, Down managers never removed "
        "included, is alive). Surviving any one AZ loss: losing any one more AZ still leaves that majority. "
        "Down voters: managers still in the member list that are not healthy. Out of place: how many "
        "healthy managers would have to move for their layout to match the optimal layout of as many "
        "managers over the AZs that are up (`domain.placement.optimal_layout`).",
        "- A quorum loss is counted where a sample has no leader after one that had. It is caused by "
        "scaling actions unless a world blow (crash, user's terminate, AZ outage) was applied since the "
        "previous sample; the latter are shown for context only.",
        "- A timeline is left out of both arms when a world blow alone would break even the optimal layout "
        "of the desired managers with no Down voter, or when the local cloud failed in either arm: "
        f"{meta['excluded']} left out this run"
        + (": " + "; ".join(f"{k}: {v}" for k, v in meta["excluded_why"].items()) if meta["excluded"] else "")
        + ".",
        "- Over-time plots: the mean over every counted timeline at that simulated minute; a timeline that "
        "has ended (last step plus the settling time) counts with its last sample.",
        f"- Wall time {meta['wall_seconds']:.0f} s for {meta['timelines']} timelines x 2 arms "
        f"({meta['timelines_per_second']:.3f} timelines/s with {meta['jobs']} processes).",
        "",
        f"Command (this run, at commit {meta.get('commit', 'unknown')}"
        + (f"; {meta['commit_at_end']} by its end" if meta.get("commit_at_end") else "")
        + "):",
        "",
        "```",
        meta["command"],
        "```",
        "",
    ]
    return "\n".join(lines)


def _commit() -> str:
    """The commit measured (``+changes`` when tracked files differ from it); "unknown" outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def _write_outputs(doc: dict[str, Any], out: Path, img: Path, *, plots: bool) -> int:
    """The fragment and (unless ``plots`` is off) the PNGs of a finished run's document."""
    counted = doc["meta"]["counted"]
    drawn = _plots(doc["series"], img, counted) if plots and counted else []
    img_rel = os.path.relpath(img, REPO / "docs")
    out.mkdir(parents=True, exist_ok=True)
    (out / "resilience.md").write_text(_fragment(doc, drawn, img_rel), encoding="utf-8")
    return len(drawn)


def _render(source: Path, out: Path, img: Path, *, plots: bool) -> int:
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
        missing = [k for k in ("meta", "series", "table") if not isinstance(doc.get(k), dict)]
        if missing:
            raise KeyError(", ".join(missing))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {source} is not a resilience.json: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    drawn = _write_outputs(doc, out, img, plots=plots)
    print(f"wrote {out / 'resilience.md'}, {drawn} plot(s) from {source}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--timelines", type=int, default=DEFAULT_TIMELINES, help="timelines to run")
    parser.add_argument("--seed", type=int, default=1, help="the chaos run's seed")
    parser.add_argument("--first", type=int, default=0, help="index of the first timeline")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--sample-every", type=float, default=60.0, help="simulated seconds between samples")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench", help="JSON and fragment")
    parser.add_argument("--img", type=Path, default=REPO / "docs" / "img", help="PNG plots")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs (no matplotlib needed)")
    parser.add_argument(
        "--settle", type=float, default=None, help="simulated seconds after the last step (default: 1800)"
    )
    parser.add_argument(
        "--render", type=Path, default=None, help="no run: rewrite the fragment and plots from this JSON"
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        return _render(args.render, args.out, args.img, plots=not args.no_plots)
    if args.timelines < 1 or args.jobs < 1 or args.sample_every <= 0 or args.first < 0:
        print("error: --timelines and --jobs must be at least 1, --sample-every positive", file=sys.stderr)
        return 2
    if args.settle is not None and args.settle < 0:
        print("error: --settle cannot be negative", file=sys.stderr)
        return 2
    jobs = [
        (args.seed, i, args.sample_every, args.settle) for i in range(args.first, args.first + args.timelines)
    ]
    results: list[dict[str, Any]] = []
    # the worker processes import the product afresh (a new one every 10 timelines): a commit made during
    # the run reaches the later timelines, so the commit is taken when the run starts and again at its end
    commit = _commit()
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.jobs, maxtasksperchild=10) as pool:
        for result in pool.imap_unordered(run_timeline, jobs):
            results.append(result)
            done = len(results)
            rate = done / (time.perf_counter() - t0)
            eta = (args.timelines - done) / rate if rate else 0.0
            p, a = (result["arms"][arm] for arm in ARMS)
            print(
                f"[{done}/{args.timelines}] {result['name']}: losses plain {len(p['losses'])} autojoin "
                f"{len(a['losses'])}; cpu {p['cpu_seconds']:.0f}+{a['cpu_seconds']:.0f} s; "
                f"{rate:.3f} timelines/s, eta {eta / 60:.1f} min",
                file=sys.stderr,
                flush=True,
            )
    wall = time.perf_counter() - t0
    results.sort(key=lambda r: r["index"])
    excluded_why: dict[str, str] = {}
    for r in results:
        why = _excluded(r)
        if why:
            excluded_why[r["name"]] = why
        else:
            r["summary"] = {arm: _summary(r["arms"][arm]) for arm in ARMS}
    counted = [r for r in results if r["name"] not in excluded_why]
    command = "nice .venv/bin/python scripts/bench_resilience.py " + " ".join(
        f"--{k} {v}" for k, v in (("timelines", args.timelines), ("seed", args.seed), ("jobs", args.jobs))
    )
    if args.first:
        command += f" --first {args.first}"
    if args.settle is not None:
        command += f" --settle {args.settle:g}"
    series = _series(counted, args.sample_every)
    doc: dict[str, Any] = {
        "meta": {
            "timelines": args.timelines,
            "first": args.first,
            "seed": args.seed,
            "jobs": args.jobs,
            "sample_every": args.sample_every,
            "settle": args.settle if args.settle is not None else "as generated (1800 s)",
            "counted": len(counted),
            "excluded": len(excluded_why),
            "excluded_why": excluded_why,
            "wall_seconds": round(wall, 1),
            "timelines_per_second": args.timelines / wall if wall else 0.0,
            "cpu_count": os.cpu_count(),
            "commit": commit,
            **({"commit_at_end": end} if (end := _commit()) != commit else {}),
            "command": command,
        },
        "table": {arm: _table(counted, arm) for arm in ARMS},
        "series": series,
        "timelines": [
            {
                "index": r["index"],
                "name": r["name"],
                "steps": r["steps"],
                "excluded": excluded_why.get(r["name"]),
                "arms": r.get("summary")
                or {
                    arm: {"error": r["arms"][arm]["error"], "unsurvivable": r["arms"][arm]["unsurvivable"]}
                    for arm in ARMS
                },
            }
            for r in results
        ],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "resilience.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    _write_outputs(doc, args.out, args.img, plots=not args.no_plots)
    for arm in ARMS:
        t = doc["table"][arm]
        print(
            f"{arm:9} scaling losses {t.get('quorum_losses_by_scaling')}  quorum "
            f"{_pct(t.get('time_with_quorum', 0))}  "
            f"any-one-AZ {_pct(t.get('time_surviving_any_one_az_loss', 0))}"
            f"  Down voters at end {t.get('down_voters_at_end_mean', 0):.2f}  gap {t.get('gap_mean', 0):.2f}"
        )
    print(f"wrote {args.out / 'resilience.json'}, {args.out / 'resilience.md'} and the plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
