"""The toxicity corpus of ``../shared/data/toxicity`` read, split and de-duplicated for training and evaluation.

Nothing of it is copied into the repository: the training script and the evaluation read it from the data
directory; the repository keeps the weights, the manifest (row counts, split rule, licences) and the figures.

Split: by source row (``source`` + ``path`` + ``source_id``), ``sha256(SPLIT_SALT | key)`` into 70/15/15
train/dev/test. Sources that are published benchmarks (:data:`BENCHMARK_SOURCES`) are left out of training and
threshold choice entirely and evaluated whole (leave-source-out). De-duplication: a dev or test row whose
normalised text (NFKC, case-fold, non-word characters to one space) occurs in an earlier split (train, then
dev) is dropped, and so is a benchmark row whose normalised text occurs in train or dev; the counts are the
de-duplication report.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard.training.splits import normalise
from guard.training.splits import split_of as _split_of

__all__ = [
    "BENCHMARK_SOURCES",
    "LABELS",
    "SPLIT_SALT",
    "Corpus",
    "Row",
    "load_corpus",
    "normalise",
    "split_of",
]

LABELS: tuple[str, ...] = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")
"""The corpus's six label columns, in detoxify ``original``'s class order."""

SPLIT_SALT = "guard-toxicity-split-v1"
"""Salts the split hash; changing it re-deals every row."""

BENCHMARK_SOURCES: frozenset[str] = frozenset(
    {
        "paul-rottger/hatecheck-data",  # HateCheck, a published functional test suite
        "rewire-online/multilingual-hatecheck",  # Multilingual HateCheck
        "conversationai/unintended-ml-bias-analysis",  # Jigsaw's bias templates and Wikipedia toxicity test set
    }
)
"""Published benchmarks: never trained or tuned on, evaluated whole (leave-source-out)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled comment: ``labels`` in :data:`LABELS` order, ``None`` where the source cannot say."""

    text: str
    labels: tuple[float | None, ...]
    source: str
    lang: str
    hard_negative: bool
    license: str
    split: str
    """``train`` | ``dev`` | ``test`` | ``benchmark``."""


@dataclass(slots=True)
class Corpus:
    """The rows by split, and what de-duplication dropped."""

    rows: list[Row] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    """Rows dropped per split as normalised duplicates of a row in an earlier split."""

    def split(self, name: str, *, lang: str | None = None) -> list[Row]:
        """The rows of split ``name`` (optionally one language only)."""
        return [row for row in self.rows if row.split == name and (lang is None or row.lang == lang)]

    def manifest(self) -> dict[str, Any]:
        """Counts per split, source and licence: what the training manifest records (no text)."""
        by_split: Counter[str] = Counter(row.split for row in self.rows)
        by_source: dict[str, Counter[str]] = {}
        for row in self.rows:
            by_source.setdefault(row.source, Counter())[row.split] += 1
        licences = sorted({f"{row.source}: {row.license}" for row in self.rows if row.split in ("train", "dev")})
        return {
            "split_rule": f"sha256('{SPLIT_SALT}|' + source + path + source_id) -> 70/15/15 train/dev/test",
            "benchmark_sources_left_out": sorted(BENCHMARK_SOURCES),
            "rows": dict(sorted(by_split.items())),
            "rows_by_source": {source: dict(sorted(c.items())) for source, c in sorted(by_source.items())},
            "dedup_rule": "exact normalised text (NFKC, case-fold, non-word characters to a space) of an earlier split",
            "dedup_dropped": {split: self.dropped[split] for split in ("dev", "test", "benchmark")},
            "train_dev_licences": licences,
        }


def split_of(key: str, salt: str = SPLIT_SALT) -> str:
    """``train``, ``dev`` or ``test`` for a source-row key (see :func:`guard.training.splits.split_of`)."""
    return _split_of(key, salt)


def _rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            if line.strip():
                yield number, json.loads(line)


def load_corpus(data_dir: Path, files: Iterable[str] = ("comments.jsonl",)) -> Corpus:
    """The rows of ``files`` in ``data_dir`` (``../shared/data/toxicity``), split and de-duplicated."""
    raw: list[Row] = []
    for name in files:
        for number, item in _rows(data_dir / name):
            source = str(item["source"])
            key = f"{source}|{item.get('path')}|{item.get('source_id', number)}"
            raw.append(
                Row(
                    text=str(item["text"]),
                    labels=tuple(None if item.get(label) is None else float(item[label]) for label in LABELS),
                    source=source,
                    lang=str(item.get("lang", "en")),
                    hard_negative=bool(item.get("hard_negative")),
                    license=str(item.get("license", "")),
                    split="benchmark" if source in BENCHMARK_SOURCES else split_of(key),
                )
            )
    corpus = Corpus()
    seen: dict[str, set[str]] = {"train": set(), "dev": set(), "test": set(), "benchmark": set()}
    earlier = {"train": (), "dev": ("train",), "test": ("train", "dev"), "benchmark": ("train", "dev")}
    for split in ("train", "dev", "test", "benchmark"):
        for row in raw:
            if row.split != split:
                continue
            key = normalise(row.text)
            if any(key in seen[other] for other in earlier[split]):
                corpus.dropped[split] += 1
                continue
            seen[split].add(key)
            corpus.rows.append(row)
    return corpus
