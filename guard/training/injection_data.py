"""The injection corpus of ``../shared/data/injection`` split for rule tuning and evaluation (nothing copied here).

Split: by source row (``source`` + ``path`` + ``source_id``, else the row number), ``sha256(SPLIT_SALT | key)`` into
70/15/15 train/dev/test; rules are tuned on train and dev only. Sources that are published benchmarks
(:data:`BENCHMARK_SOURCES`) are never looked at while tuning and are evaluated whole (leave-source-out). A dev, test
or benchmark row whose normalised text occurs in an earlier split is dropped, and so is a benchmark row found inside a
train or dev document (the corpus inserts some benchmark attacks into paragraphs): the de-duplication report.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard.training.splits import normalise, split_of

__all__ = ["BENCHMARK_SOURCES", "InjectionCorpus", "InjectionRow", "load_injection"]

SPLIT_SALT = "guard-injection-split-v1"

BENCHMARK_SOURCES: frozenset[str] = frozenset(
    {
        "HumanCompatibleAI/tensor-trust-data",  # Tensor Trust robustness benchmarks
        "meta-llama/PurpleLlama",  # CyberSecEval prompt injection (and its benign FRR prompts)
        "leolee99/InjecGuard",  # NotInject and WildGuardTest
        "microsoft/BIPIA",
        "sequrity-ai/agentdojo",
        "enkryptai/xInjectAgent",  # InjecAgent copy
        "Jarviswang94/Multilingual_safety_benchmark",  # XSafety
    }
)
"""Published benchmarks among the sources: evaluated whole, never tuned on."""

MIN_PAYLOAD_CHARS = 20
"""Shorter normalised texts are not looked for inside training documents (a few words occur anywhere)."""


@dataclass(frozen=True, slots=True)
class InjectionRow:
    """One labelled text (``label``: injection | jailbreak | benign | indirect_injection | benign_document)."""

    text: str
    label: str
    source: str
    lang: str
    hard_negative: bool
    split: str
    file: str


@dataclass(slots=True)
class InjectionCorpus:
    """The rows by split, and what de-duplication dropped."""

    rows: list[InjectionRow] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    def split(self, *names: str, file: str | None = None) -> list[InjectionRow]:
        """The rows of the named splits (optionally of one file: ``direct`` or ``indirect``)."""
        return [row for row in self.rows if row.split in names and (file is None or row.file == file)]

    def manifest(self) -> dict[str, Any]:
        """Counts per file, split and source (no text)."""
        counts: Counter[str] = Counter(f"{row.file}/{row.split}" for row in self.rows)
        by_source: dict[str, Counter[str]] = {}
        for row in self.rows:
            by_source.setdefault(row.source, Counter())[row.split] += 1
        return {
            "split_rule": f"sha256('{SPLIT_SALT}|' + source + path + source_id) -> 70/15/15 train/dev/test",
            "benchmark_sources_left_out": sorted(BENCHMARK_SOURCES),
            "rows": dict(sorted(counts.items())),
            "rows_by_source": {source: dict(sorted(c.items())) for source, c in sorted(by_source.items())},
            "dedup_rule": (
                "exact normalised text (NFKC, case-fold, non-word characters to a space) of an earlier split; a"
                " benchmark row whose normalised text occurs inside a train or dev document"
            ),
            "dedup_dropped": {
                f"{file}/{split}": self.dropped[f"{file}/{split}"]
                for file in ("direct", "indirect")
                for split in ("dev", "test", "benchmark", "benchmark_inside_training_documents")
            },
        }


def load_injection(data_dir: Path) -> InjectionCorpus:
    """``direct.jsonl`` and ``indirect.jsonl`` of ``data_dir``, split and de-duplicated."""
    raw: list[InjectionRow] = []
    for file in ("direct", "indirect"):
        with (data_dir / f"{file}.jsonl").open(encoding="utf-8") as lines:
            for number, line in enumerate(lines):
                if not line.strip():
                    continue
                item = json.loads(line)
                source = str(item["source"])
                key = f"{source}|{item.get('path')}|{item.get('source_id') or f'{file}:{number}'}"
                split = "benchmark" if source in BENCHMARK_SOURCES else split_of(key, SPLIT_SALT)
                raw.append(
                    InjectionRow(
                        text=str(item["text"]),
                        label=str(item["label"]),
                        source=source,
                        lang=str(item.get("lang") or "und"),
                        hard_negative=bool(item.get("hard_negative")),
                        split=split,
                        file=file,
                    )
                )
    corpus = InjectionCorpus()
    seen: dict[str, set[str]] = {name: set() for name in ("train", "dev", "test", "benchmark")}
    earlier = {"train": (), "dev": ("train",), "test": ("train", "dev"), "benchmark": ("train", "dev")}
    for split in ("train", "dev", "test", "benchmark"):
        for row in raw:
            if row.split != split:
                continue
            key = normalise(row.text)
            if any(key in seen[other] for other in earlier[split]):
                corpus.dropped[f"{row.file}/{split}"] += 1
                continue
            seen[split].add(key)
            corpus.rows.append(row)
    return _without_payloads_seen_in_training(corpus)


def _without_payloads_seen_in_training(corpus: InjectionCorpus) -> InjectionCorpus:
    """Drop the benchmark rows that occur *inside* a train or dev document. The corpus builds some indirect rows by
    inserting a benchmark's attack (XSafety, CyberSecEval) into an ordinary paragraph; those attacks were seen in
    training, so scoring them as leave-source-out would overstate how the checks generalise."""
    documents = "\n".join(
        normalise(row.text) for row in corpus.rows if row.file == "indirect" and row.split in ("train", "dev")
    )
    kept = []
    for row in corpus.rows:
        key = normalise(row.text) if row.split == "benchmark" else ""
        if len(key) >= MIN_PAYLOAD_CHARS and key in documents:
            corpus.dropped[f"{row.file}/benchmark_inside_training_documents"] += 1
            continue
        kept.append(row)
    corpus.rows = kept
    return corpus
