"""The prohibited-use corpus of ``../shared/data/prohibited`` read, split and de-duplicated.

Nothing of it is copied into the repository: training and evaluation read it from the data directory; the
repository keeps the weights, the manifest (row counts per split and source, split rule, de-duplication report,
licences) and the figures.

Split: by source row (``source`` + ``path`` + ``source_id``; for answers, ``source`` + their request, so that every
answer to one request lands in one split), ``sha256(SPLIT_SALT | key)`` into 70/15/15 train/dev/test. Sources that
are published benchmarks (:data:`BENCHMARK_SOURCES`) are
never trained or tuned on and are evaluated whole (leave-source-out). De-duplication (a row of a later split — dev, then
test, then benchmark — against every earlier one, on normalised text): a request is dropped when it was a request
or an answered request before; an answer when it, or the request it answers, was an answer's before. The counts are
the de-duplication report.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from guard.policy.schema import ProhibitedCategoryName
from guard.training.splits import normalise, split_of

__all__ = [
    "BENCHMARK_SOURCES",
    "CATEGORIES",
    "SPLIT_SALT",
    "WRITTEN_ANSWERS",
    "WRITTEN_CJK",
    "WRITTEN_DIR",
    "WRITTEN_REQUESTS",
    "Corpus",
    "Example",
    "load_corpus",
    "written",
]

SPLIT_SALT = "guard-prohibited-split-v1"
"""Salts the split hash; changing it re-deals every row."""

BENCHMARK_SOURCES: frozenset[str] = frozenset({"bertiev/SimpleSafetyTests"})
"""Published benchmarks among the corpus's sources: never trained or tuned on, evaluated whole."""

CATEGORIES: tuple[str, ...] = get_args(ProhibitedCategoryName)
"""The Gemma prohibited-use categories, in the heads' class order (after ``benign``)."""

SPLITS = ("train", "dev", "test", "benchmark")
WRITTEN_DIR = Path(__file__).parent / "data"
WRITTEN_REQUESTS = ("requests_extra.jsonl", "requests_contrast.jsonl")
"""Our own English requests (train only)."""
WRITTEN_ANSWERS = ("responses_contrast.jsonl",)
"""Our own answers beside their requests (train only)."""
WRITTEN_CJK = ("requests_cjk.jsonl", "requests_cjk_more.jsonl")
"""Our own Japanese, Korean and Chinese requests for the character n-gram layer (train only)."""
"""Training-only rows we wrote ourselves: conversational follow-ups, statements, noise and safe-but-scary requests
(``requests_extra.jsonl``), safety, health, education and history questions on the categories' topics
(``requests_contrast.jsonl``), and safety advice, clinical, educational and news answers and refusals
(``responses_contrast.jsonl``). They go to the train split only, so no figure is measured on them."""


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text. ``label`` is ``benign``, a category, or ``harmful`` (a harmful answer whose category the
    source does not say); ``kind`` is the corpus label (``harmful``, ``benign``, ``benign_borderline``,
    ``harmful_response``, ``refusal``, ``benign_response``); ``context`` is an answer's request."""

    text: str
    label: str
    kind: str
    lang: str
    source: str
    license: str
    split: str
    context: str | None = None

    @property
    def harmful(self) -> bool:
        return self.label != "benign"


@dataclass(slots=True)
class Corpus:
    """Requests and answers by split, and what de-duplication dropped."""

    requests: list[Example] = field(default_factory=list)
    responses: list[Example] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    def select(self, file: str, split: str, *, lang: str | None = None) -> list[Example]:
        rows = self.requests if file == "requests" else self.responses
        return [row for row in rows if row.split == split and (lang is None or row.lang == lang)]

    def manifest(self) -> dict[str, Any]:
        """Counts per file, split and source, the split and de-duplication rules and counts, and licences."""

        def counts(rows: list[Example]) -> dict[str, Any]:
            by_source: dict[str, Counter[str]] = {}
            for row in rows:
                by_source.setdefault(row.source, Counter())[row.split] += 1
            return {
                "rows": dict(sorted(Counter(row.split for row in rows).items())),
                "rows_by_source": {source: dict(sorted(c.items())) for source, c in sorted(by_source.items())},
            }

        trained = [row for row in (*self.requests, *self.responses) if row.split in ("train", "dev")]
        return {
            "split_rule": f"sha256('{SPLIT_SALT}|' + source|path|source_id, answers source|prompt|request) -> "
            "70/15/15 train/dev/test",
            "benchmark_sources_left_out": sorted(BENCHMARK_SOURCES),
            "requests": counts(self.requests),
            "responses": counts(self.responses),
            "dedup_rule": "normalised text (NFKC, case-fold, non-word characters to a space) seen in an earlier split "
            "(train, dev, test, benchmark): a request that was a request or an answered request; an answer that "
            "was an answer, or whose request was an answered request",
            "dedup_dropped": {split: self.dropped[split] for split in SPLITS[1:]},
            "train_dev_licences": sorted({f"{row.source}: {row.license}" for row in trained}),
        }


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            if line.strip():
                yield number, json.loads(line)


def _split(item: dict[str, Any], number: int) -> str:
    if item["source"] in BENCHMARK_SOURCES:
        return "benchmark"
    if item.get("prompt"):  # every answer to one request goes to the same split (GPTFuzz: 17 answers a request)
        return split_of(f"{item['source']}|prompt|{normalise(str(item['prompt']))}", SPLIT_SALT)
    return split_of(f"{item['source']}|{item.get('path')}|{item.get('source_id', number)}", SPLIT_SALT)


def _request(item: dict[str, Any], number: int) -> Example:
    harmful = item["label"] == "harmful"
    return Example(
        text=str(item["text"]),
        label=str(item["category"]) if harmful else "benign",
        kind=str(item["label"]),
        lang=str(item.get("lang", "en")),
        source=str(item["source"]),
        license=str(item.get("license", "")),
        split=_split(item, number),
    )


def _response(item: dict[str, Any], number: int) -> Example:
    harmful = item["label"] == "harmful_response"
    return Example(
        text=str(item["text"]),
        label=(str(item.get("category") or "harmful")) if harmful else "benign",
        kind=str(item["label"]),
        lang=str(item.get("lang", "en")),
        source=str(item["source"]),
        license=str(item.get("license", "")),
        split=_split(item, number),
        context=str(item.get("prompt") or "") or None,
    )


def load_corpus(data_dir: Path) -> Corpus:
    """``requests.jsonl`` and ``responses.jsonl`` of ``data_dir``, split and de-duplicated."""
    requests = [_request(item, n) for n, item in _lines(data_dir / "requests.jsonl")]
    responses = [_response(item, n) for n, item in _lines(data_dir / "responses.jsonl")]
    corpus = Corpus()
    # What earlier splits hold: request texts, answer texts, and the requests answers were given to.
    seen: dict[str, set[str]] = {"request": set(), "response": set(), "prompt": set()}
    for split in SPLITS:
        added: dict[str, set[str]] = {kind: set() for kind in seen}
        for row in requests:
            if row.split != split:
                continue
            text = normalise(row.text)
            if text in seen["request"] or text in seen["prompt"]:
                corpus.dropped[split] += 1
                continue
            added["request"].add(text)
            corpus.requests.append(row)
        for row in responses:
            if row.split != split:
                continue
            text, prompt = normalise(row.text), normalise(row.context or "")
            if text in seen["response"] or (prompt and prompt in seen["prompt"]):
                corpus.dropped[split] += 1
                continue
            added["response"].add(text)
            added["prompt"].add(prompt)
            corpus.responses.append(row)
        for kind, keys in added.items():
            seen[kind] |= keys
    return corpus


def written(written_dir: Path = WRITTEN_DIR, extra: Sequence[Path] = ()) -> tuple[list[Example], list[Example]]:
    """Our own training-only requests and answers (:data:`WRITTEN_DIR`), plus ``extra`` request files of the same
    format (an experiment's rows: ``guard models train-prohibited --extra-requests``)."""
    files = [written_dir / name for name in WRITTEN_REQUESTS] + list(extra)
    requests = [
        Example(
            text=str(item["text"]),
            label=str(item["label"]),
            kind="benign" if item["label"] == "benign" else "harmful",
            lang=str(item.get("lang", "en")),
            source="guard (written)",
            license="Apache-2.0",
            split="train",
        )
        for path in files
        for _, item in _lines(path)
    ]
    answers = [
        Example(
            text=str(item["text"]),
            label=str(item["label"]),
            kind=str(item.get("kind", "benign_response")),
            lang="en",
            source="guard (written)",
            license="Apache-2.0",
            split="train",
            context=str(item["prompt"]),
        )
        for name in WRITTEN_ANSWERS
        for _, item in _lines(written_dir / name)
    ]
    return requests, answers
