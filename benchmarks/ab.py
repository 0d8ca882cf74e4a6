"""Old against new in one sitting: run a benchmark of two git revisions alternately and report the median ratios.

This machine is noisy, so a figure is only compared with one measured beside it: each round runs both revisions
(the order alternates between rounds), each revision runs its own copy of the benchmark from a detached worktree
with that revision first on ``PYTHONPATH``, and the report gives every run plus the median of the per-round
new/old ratios. ``--new`` defaults to the working tree as it is (uncommitted changes included).

    python benchmarks/ab.py --base 9907d5b --runs 5 checks gateway
    python benchmarks/ab.py --base 9907d5b --new HEAD --runs 5 checks
    GUARD_HOME=/tmp/new python benchmarks/ab.py --base 9907d5b --base-home /tmp/old --runs 3 checks  # new dev models

Figures: ``checks`` — input+output p50 at concurrency 1 (ms) and texts/s at concurrency 16; ``gateway`` — 16
concurrent ÷ sequential wall time. Writes ``results/ab-<benchmarks>-<timestamp>.json`` (and ``-latest``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from report import RESULTS_DIR, environment, set_runtime_defaults, write_results

REPO = Path(__file__).resolve().parent.parent

FIGURES: dict[str, dict[str, Callable[[dict[str, Any]], float]]] = {
    "checks": {
        "total_p50_ms_c1": lambda r: float(r["concurrency_1"]["total_p50_ms"]),
        "texts_per_s_c16": lambda r: float(r["concurrency_16"]["texts_per_s"]),
    },
    "gateway": {
        "concurrent_over_sequential": lambda r: float(r["target"]["ratio"]),
    },
}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def checkout(rev: str, into: Path) -> Path:
    """A detached worktree of ``rev``: the revision's own code and its own benchmark script."""
    subprocess.run(["git", "worktree", "add", "--detach", str(into), rev], cwd=REPO, check=True, capture_output=True)
    return into


def run_once(tree: Path, bench: str, out: Path, home: Path | None = None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree), **({"GUARD_HOME": str(home)} if home else {})}
    done = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / f"{bench}.py"), "--out", str(out)], cwd=tree, env=env, check=False
    )
    latest = out / f"{bench}-latest.json"
    if done.returncode != 0:
        if not latest.is_file():
            raise RuntimeError(f"{bench} in {tree} failed (exit {done.returncode}) before writing its results")
        # Seen rarely: an abort at interpreter exit ("terminate called without an active exception") after the
        # results were written; the figures are complete, the run is kept and the exit is reported.
        print(f"warning: {bench} in {tree} exited {done.returncode} after writing {latest.name}", flush=True)
    result: dict[str, Any] = json.loads(latest.read_text(encoding="utf-8"))
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmarks", nargs="+", choices=sorted(FIGURES))
    parser.add_argument("--base", required=True, help="the old revision (a commit, tag or branch)")
    parser.add_argument("--new", default=None, help="the new revision (default: the working tree as it is)")
    parser.add_argument("--runs", type=int, default=5, help="rounds; each runs both revisions once")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes (default: %(default)s)")
    parser.add_argument(
        "--base-home",
        type=Path,
        help="GUARD_HOME for the old revision's runs (its own dev-model builds, when the dev models changed)",
    )
    return parser.parse_args()


def main() -> None:
    set_runtime_defaults()
    args = parse_args()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="guard-ab-") as tmp:
        work = Path(tmp)
        trees = {"old": checkout(args.base, work / "old")}
        trees["new"] = checkout(args.new, work / "new") if args.new else REPO
        try:
            for round_no in range(args.runs):
                order = ("old", "new") if round_no % 2 == 0 else ("new", "old")
                for bench in args.benchmarks:
                    for side in order:
                        out = work / f"{side}-{bench}-{round_no}"
                        result = run_once(trees[side], bench, out, args.base_home if side == "old" else None)
                        figures = {name: get(result) for name, get in FIGURES[bench].items()}
                        runs.append({"round": round_no, "side": side, "benchmark": bench, **figures})
                        print(f"round {round_no} {bench} {side}: {figures}", flush=True)
        finally:
            for side in ("old", "new"):
                if trees[side] != REPO:
                    subprocess.run(["git", "worktree", "remove", "--force", str(trees[side])], cwd=REPO, check=False)
    summary = summarise(runs, args.benchmarks)
    payload = {
        "benchmark": "ab",
        "environment": environment(),
        "base": git("rev-parse", args.base),
        "new": git("rev-parse", args.new) if args.new else f"working tree at {git('rev-parse', 'HEAD')}",
        "runs": runs,
        "median_new_over_old": summary,
    }
    print_table(runs, summary)
    path = write_results("ab-" + "-".join(args.benchmarks), payload, args.out)
    print(f"results: {path}")


def summarise(runs: list[dict[str, Any]], benchmarks: list[str]) -> dict[str, float]:
    """Per figure, the median over rounds of new ÷ old measured in the same round."""
    summary: dict[str, float] = {}
    for bench in benchmarks:
        for name in FIGURES[bench]:
            ratios = []
            for round_no in sorted({r["round"] for r in runs}):
                pair = {r["side"]: r[name] for r in runs if r["round"] == round_no and r["benchmark"] == bench}
                if "old" in pair and "new" in pair and pair["old"]:
                    ratios.append(pair["new"] / pair["old"])
            summary[f"{bench}.{name}"] = statistics.median(ratios) if ratios else float("nan")
    return summary


def print_table(runs: list[dict[str, Any]], summary: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="old vs new, alternating rounds")
    for column in ("round", "benchmark", "figure", "old", "new", "new/old"):
        table.add_column(column, justify="left" if column in ("benchmark", "figure") else "right")
    for run in runs:
        if run["side"] != "new":
            continue
        old = next(
            r for r in runs if r["round"] == run["round"] and r["benchmark"] == run["benchmark"] and r["side"] == "old"
        )
        for name in FIGURES[run["benchmark"]]:
            table.add_row(
                str(run["round"]),
                run["benchmark"],
                name,
                f"{old[name]:.3f}",
                f"{run[name]:.3f}",
                f"{run[name] / old[name]:.3f}",
            )
    console = Console()
    console.print(table)
    for name, ratio in summary.items():
        console.print(f"median new/old {name}: {ratio:.3f}")


if __name__ == "__main__":
    main()
