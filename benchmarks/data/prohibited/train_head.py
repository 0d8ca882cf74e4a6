"""Train the prohibited-use embedding head and write policies/prohibited/minilm-head.json.

The head is a multinomial logistic regression over all-MiniLM-L6-v2 embeddings (the same ``embed`` the check uses)
with one class per category plus ``benign``. It trains on dev.jsonl plus train_extra.jsonl (more requests written
for training only); eval.jsonl is never read here. Before fitting it prints, for the dev rows, out-of-fold scores
(5 folds over dev, train_extra always in the training side) as the check computes them — per-category recall and
the benign false-positive rate at a grid of thresholds — which is what the policies' ``embedding:`` thresholds were
chosen from, so no threshold was tuned on rows the head had memorised.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/data/prohibited/train_head.py [--report-only]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from guard.checks.semantic import ENCODER_NAME, HEAD_FORMAT, LinearHead, default_head_path, embed, load_encoder

HERE = Path(__file__).parent
DEV = HERE / "dev.jsonl"
EXTRA = HERE / "train_extra.jsonl"
C = 8.0
"""Inverse L2 strength, chosen on the out-of-fold table (2, 4, 8 and 16 were tried; binary heads did worse)."""
SEED = 0
THRESHOLDS = (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)


def _rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _model() -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=5000)


def report(x_dev: np.ndarray, dev: list[dict[str, str]], x_extra: np.ndarray, extra_labels: list[str]) -> None:
    """Out-of-fold category scores for the English dev rows, as the check scores them, at each threshold."""
    y = np.array([row["label"] for row in dev])
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    scores = np.zeros((len(dev), 0))
    for train, test in folds.split(x_dev, y):
        model = _model().fit(np.vstack([x_dev[train], x_extra]), np.concatenate([y[train], extra_labels]))
        head = LinearHead(classes=tuple(model.classes_), weight=model.coef_, bias=model.intercept_, sha256="")
        table = head.category_scores(head.probabilities(x_dev[test].astype(np.float32)))
        if not scores.shape[1]:
            categories = list(head.categories)
            scores = np.zeros((len(dev), len(categories)))
        scores[test] = table
    english = np.array([row["lang"] == "en" for row in dev])
    benign = y == "benign"
    scary = np.array([row.get("tag") == "scary" for row in dev])
    print("English dev rows, out-of-fold: recall per category; benign and scary-benign false-positive rates")
    print("threshold  " + "  ".join(f"{c[:8]:>8}" for c in categories) + "   all-harm  benign-FP  scary-FP")
    for threshold in THRESHOLDS:
        fired = scores >= threshold
        recalls = [fired[(y == c) & english, i].mean() for i, c in enumerate(categories)]
        cells = "  ".join(f"{r:8.2f}" for r in recalls)
        harm = fired[~benign & english].any(axis=1).mean()
        false_positive = fired[benign & english].any(axis=1).mean()
        scary_fp = fired[benign & english & scary].any(axis=1).mean()
        print(f"{threshold:9.2f}  {cells}   {harm:8.2f}  {false_positive:9.3f}  {scary_fp:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true", help="print the out-of-fold table, write nothing")
    parser.add_argument("--out", type=Path, default=default_head_path())
    args = parser.parse_args()

    dev, extra = _rows(DEV), _rows(EXTRA)
    encoder = load_encoder()
    x_dev = embed(encoder, [row["text"] for row in dev])
    x_extra = embed(encoder, [row["text"] for row in extra])
    extra_labels = [row["label"] for row in extra]
    report(x_dev, dev, x_extra, extra_labels)
    if args.report_only:
        return
    rows = dev + extra
    x = np.vstack([x_dev, x_extra])
    model = _model().fit(x, [row["label"] for row in rows])
    head = {
        "format": HEAD_FORMAT,
        "encoder": ENCODER_NAME,
        "dim": int(x.shape[1]),
        "classes": [str(c) for c in model.classes_],
        "weight": np.round(model.coef_, 6).tolist(),
        "bias": np.round(model.intercept_, 6).tolist(),
        "training": {
            "script": "benchmarks/data/prohibited/train_head.py",
            "data": {
                f"benchmarks/data/prohibited/{path.name}": hashlib.sha256(path.read_bytes()).hexdigest()
                for path in (DEV, EXTRA)
            },
            "rows": len(rows),
            "model": f"sklearn LogisticRegression(C={C})",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(head, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(head['classes'])} classes, {len(rows)} training rows)")


if __name__ == "__main__":
    main()
