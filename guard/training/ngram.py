"""Train the ja/ko/zh character n-gram classifier (``guard models train-ngram``; seconds on one core).

Data: the Japanese, Korean and Chinese requests of ``../shared/data/prohibited``, split and de-duplicated exactly as
for the encoder (:func:`guard.training.prohibited_data.load_corpus`): train to fit, dev to calibrate and to set the
benign-logit offset, test never touched here (``benchmarks/prohibited.py`` reports it). In that corpus each
language's harmful and benign rows come from different sources (harmful: translated questions; benign: instruction
data), so a model of it alone learns the *style* of its sources — the first one blocked 60% of our own ordinary
ja/ko/zh questions. So the benign side also takes, by their own splits, the ja/ko/zh rows of sources that are
not published benchmarks from ``../shared/data/injection`` (benign prompts and clean documents: questions, quizzes,
role prompts) and ``../shared/data/toxicity/multilingual.jsonl`` (non-toxic comments; at most
:data:`COMMENTS_PER_SOURCE` a source and split), and our own requests (:data:`WRITTEN_CJK` in ``guard/training/data/``:
everyday, safety and scary-but-benign questions, harmful instructions and harmless contrasts of the same shape; train
only). A multinomial logistic
regression (scikit-learn, L-BFGS: deterministic) over hashed character 1-3-gram counts
(:class:`guard.checks.ngram.NgramFeatures`), the temperature that minimises the dev set's log-loss folded into its
weights. The offset: one value for the three languages (their dev splits hold 12 to 60 benign rows each, too few
to set one per language), the one with the highest dev recall that keeps the dev benign requests blocked at ≤
:data:`DEV_FALSE_POSITIVES` at the shipped policy's input threshold; the smallest such in magnitude on ties.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guard.checks.ngram import NGRAM_FORMAT, NgramFeatures
from guard.checks.semantic import BENIGN, Head
from guard.devmodels.toxicity_data import load_corpus as load_comments
from guard.training.injection_data import load_injection
from guard.training.prohibited_data import CATEGORIES, WRITTEN_CJK, WRITTEN_DIR, Example, load_corpus

__all__ = ["LANGUAGES", "POLICY_THRESHOLD", "ngram_rows", "train_ngram"]

logger = logging.getLogger(__name__)

LANGUAGES = ("ja", "ko", "zh")
POLICY_THRESHOLD = 0.8
"""The shipped ``default`` policy's input classifier threshold (a test keeps the two equal)."""
DEV_FALSE_POSITIVES = 0.01
"""Benign dev rows blocked at most, pooled over the three languages. Most of them are easy (comments, quizzes);
at 3% the offset blocked 28% of our own safety-themed ja/ko/zh questions, at 1% about 8%."""
OFFSET_GRID = tuple(-step / 10 for step in range(41))
"""Benign-logit offsets tried (0 to -4 in tenths: a negative offset lowers the benign logit)."""
COMMENTS_PER_SOURCE = 300
"""Non-toxic comments taken per source and split (a few sources hold a thousand; requests stay the majority)."""
REGULARISATION = 30.0
"""Inverse L2 strength (scikit-learn's ``C``), chosen on the dev split among 3, 10, 30 and 100."""


def _fit(rows: Sequence[Example], features: NgramFeatures) -> Head:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=REGULARISATION, max_iter=5000)
    model.fit(features.transform([row.text for row in rows]), [row.label for row in rows])
    fitted = [str(c) for c in model.classes_]
    classes = (BENIGN, *[c for c in CATEGORIES if c in fitted])
    order = [fitted.index(c) for c in classes]
    return Head(classes, model.coef_[order].astype(np.float32), model.intercept_[order].astype(np.float32))


def _harmful_mass(head: Head, matrix: Any, offset: float = 0.0) -> np.ndarray:
    return 1.0 - head.probabilities(matrix, [offset] * matrix.shape[0])[:, 0]  # type: ignore[no-any-return]


def _calibrate(head: Head, matrix: Any, harmful: np.ndarray) -> tuple[Head, float]:
    """Fold into the head the temperature minimising the dev log-loss of the harmful mass."""
    from scipy.optimize import minimize_scalar

    def loss(temperature: float) -> float:
        scaled = Head(head.classes, head.weight / temperature, head.bias / temperature)
        mass = np.clip(_harmful_mass(scaled, matrix), 1e-6, 1 - 1e-6)
        return float(-np.mean(np.where(harmful, np.log(mass), np.log(1 - mass))))

    temperature = float(minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded").x)
    return Head(head.classes, head.weight / temperature, head.bias / temperature), temperature


def _figures(head: Head, matrix: Any, rows: Sequence[Example], offset: float) -> dict[str, Any]:
    blocked = _harmful_mass(head, matrix, offset) >= POLICY_THRESHOLD
    figures: dict[str, Any] = {}
    for lang in LANGUAGES:
        harmful = np.asarray([row.lang == lang and row.harmful for row in rows])
        benign = np.asarray([row.lang == lang and not row.harmful for row in rows])
        figures[lang] = {
            "harmful": int(harmful.sum()),
            "benign": int(benign.sum()),
            "recall": round(float(blocked[harmful].mean()), 4) if harmful.any() else None,
            "fpr": round(float(blocked[benign].mean()), 4) if benign.any() else None,
        }
    return figures


def _offset(head: Head, matrix: Any, harmful: np.ndarray) -> float:
    best, best_recall = 0.0, -1.0
    for offset in OFFSET_GRID:
        blocked = _harmful_mass(head, matrix, offset) >= POLICY_THRESHOLD
        recall = float(blocked[harmful].mean())
        if float(blocked[~harmful].mean()) <= DEV_FALSE_POSITIVES and recall > best_recall:
            best, best_recall = offset, recall
    return best


def _benign(text: str, lang: str, source: str, split: str) -> Example:
    return Example(text=text, label=BENIGN, kind="benign", lang=lang, source=source, license="", split=split)


def ngram_rows(data_dir: Path, split: str) -> list[Example]:
    """The ja/ko/zh rows of ``split`` (``train``, ``dev`` or ``test``) from the three corpora beside
    ``data_dir`` (``../shared/data/prohibited``), plus our own for ``train``."""
    shared = data_dir.parent
    rows = [row for row in load_corpus(data_dir).select("requests", split) if row.lang in LANGUAGES]
    rows += [
        _benign(row.text, row.lang, f"injection: {row.source}", split)
        for row in load_injection(shared / "injection").split(split)
        if row.lang in LANGUAGES and row.label in ("benign", "benign_document")
    ]
    taken: dict[str, int] = {}
    for row in load_comments(shared / "toxicity", ("multilingual.jsonl",)).split(split):
        if row.lang in LANGUAGES and row.labels[0] == 0.0 and taken.get(row.source, 0) < COMMENTS_PER_SOURCE:
            taken[row.source] = taken.get(row.source, 0) + 1
            rows.append(_benign(row.text, row.lang, f"toxicity: {row.source}", split))
    if split == "train":
        lines = [line for name in WRITTEN_CJK for line in (WRITTEN_DIR / name).read_text(encoding="utf-8").splitlines()]
        for item in map(json.loads, filter(None, lines)):
            harmful = item["label"] != BENIGN
            rows.append(
                Example(
                    text=item["text"],
                    label=item["label"],
                    kind="harmful" if harmful else "benign",
                    lang=item["lang"],
                    source="guard (written)",
                    license="Apache-2.0",
                    split="train",
                )
            )
    return rows


def train_ngram(data_dir: Path, out: Path) -> dict[str, Any]:
    """Fit, calibrate and set the offset; write the weights (seen buckets only) and ``<stem>-training.json``."""
    from safetensors.numpy import save_file

    started = time.perf_counter()
    corpus = load_corpus(data_dir)
    rows = {split: ngram_rows(data_dir, split) for split in ("train", "dev")}
    features = NgramFeatures()
    train = features.transform([row.text for row in rows["train"]])
    head = _fit(rows["train"], features)
    dev = features.transform([row.text for row in rows["dev"]])
    dev_harmful = np.asarray([row.harmful for row in rows["dev"]])
    head, temperature = _calibrate(head, dev, dev_harmful)
    offset = _offset(head, dev, dev_harmful)
    seen = np.unique(train.indices).astype(np.int32)
    tensors: dict[str, np.ndarray] = {
        "rows": seen,
        "values": head.weight[:, seen].T.astype(np.float16).copy(),
        "bias": head.bias.astype(np.float32),
    }
    languages = dict.fromkeys(LANGUAGES, offset)
    metadata = {
        "format": NGRAM_FORMAT,
        "classes": json.dumps(list(head.classes)),
        "features": json.dumps(features.metadata()),
        "languages": json.dumps(languages, sort_keys=True),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=metadata)
    by_source: dict[str, dict[str, int]] = {}
    for split, members in rows.items():
        for row in members:
            counts = by_source.setdefault(f"{row.lang} {row.kind} {row.source}", {})
            counts[split] = counts.get(split, 0) + 1
    manifest = {
        "model": "multinomial logistic regression over hashed character n-gram counts (scikit-learn)",
        "features": features.metadata(),
        "classes": list(head.classes),
        "regularisation_C": REGULARISATION,
        "temperature": round(temperature, 4),
        "languages": languages,
        "offset_rule": f"highest dev recall with pooled dev benign blocked <= {DEV_FALSE_POSITIVES} at "
        f"threshold {POLICY_THRESHOLD}",
        "seen_buckets": len(seen),
        "rows": {split: len(members) for split, members in rows.items()},
        "rows_by_language_label_source": dict(sorted(by_source.items())),
        "dedup_dropped": {split: corpus.dropped[split] for split in ("dev", "test", "benchmark")},
        "dev": _figures(head, dev, rows["dev"], offset),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    out.with_name(f"{out.stem}-training.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s (%d buckets seen) in %.0f s", out, len(seen), manifest["seconds"])
    return manifest
