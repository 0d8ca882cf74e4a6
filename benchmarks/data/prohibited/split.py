"""Split the labelled prohibited-use requests ~50/50 into dev.jsonl (tuning, head training) and eval.jsonl (reporting).

Deterministic: rows are grouped by (label, lang, tag) and each group is shuffled with a fixed seed, so every
category, language and the scary-benign subset are represented on both sides (the small ja/ko/zh slices are grouped
as harmful vs benign per language, and odd groups give their extra row to dev and eval in turn). Run it once;
eval.jsonl is committed before anything is tuned and must not be regenerated afterwards.

    python benchmarks/data/prohibited/split.py
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
SEED = 20261123


def split(rows: list[dict[str, str]], seed: int = SEED) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    groups: defaultdict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        label = row["label"]
        if row["lang"] != "en" and label != "benign":
            label = "harmful"  # one or two rows per category and language: stratify by language only
        groups[(label, row["lang"], row.get("tag", ""))].append(row)
    rng = random.Random(seed)
    dev: list[dict[str, str]] = []
    evaluation: list[dict[str, str]] = []
    extra_to_dev = True
    for key in sorted(groups):
        group = groups[key]
        rng.shuffle(group)
        half = len(group) // 2
        if len(group) % 2:
            half += extra_to_dev
            extra_to_dev = not extra_to_dev
        dev += group[:half]
        evaluation += group[half:]
    return dev, evaluation


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main() -> None:
    rows = [json.loads(line) for line in (HERE / "requests.jsonl").read_text(encoding="utf-8").splitlines() if line]
    dev, evaluation = split(rows)
    _write(HERE / "dev.jsonl", dev)
    _write(HERE / "eval.jsonl", evaluation)
    print(f"dev {len(dev)} rows, eval {len(evaluation)} rows")


if __name__ == "__main__":
    main()
