"""PII evaluation: gold spans vs. what the PII check finds, scored by character overlap per entity type.

Scoring unit: **characters**. For each entity type, the gold characters are those inside a gold span of that type,
the predicted characters those inside a finding of that type; a predicted character is a true positive when it is
also gold for the same type. Precision and recall are over these characters, F2 = 5PR / (4P + R) (recall weighs
four times as much as precision: a missed identifier leaks, an extra redaction only costs readability).
Whitespace is not counted: a gold address spans line breaks that a detector may split at, and that is no miss.
The headline F2 pools the characters of the scored types (micro average); the macro average over the types
is reported beside it.

The same rows also run through vanilla presidio (its ``AnalyzerEngine`` with the same spaCy model and only its
default recognizers and settings) so every report carries its own baseline.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from guard.checks import Check, CheckItem, RequestScope, Stage
from guard.evaluation.report import Report
from guard.policy import PiiConfig, Policy

__all__ = [
    "SCORED_ENTITIES",
    "CharCounts",
    "GoldSpan",
    "evaluate",
    "f_beta",
    "score_spans",
    "vanilla_presidio",
]

SCORED_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "LOCATION",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "IBAN_CODE",
    "US_ITIN",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_BANK_NUMBER",
    "UK_NHS",
)
"""The entity types the headline F2 is computed over (issue 4's eight, issue 17's five more). A type with no gold
character in a data set adds nothing but its false positives."""

DEFAULT_SCORE_THRESHOLD = 0.4
"""The threshold used when the policy has no PII section for the stage (the shipped policies use 0.4)."""

BATCH_SIZE = 32


class GoldSpan(msgspec.Struct, frozen=True):
    """A labelled span ``[start, end)`` in code points; also used for predictions."""

    type: str
    start: int
    end: int


@dataclass(slots=True)
class CharCounts:
    """Character counts of one entity type: true positives, false positives, false negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: CharCounts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f2(self) -> float:
        return f_beta(self.precision, self.recall, 2.0)


def f_beta(precision: float, recall: float, beta: float) -> float:
    if precision == 0.0 and recall == 0.0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall)


def _characters(text: str, spans: Iterable[GoldSpan], entity: str) -> set[int]:
    return {i for span in spans if span.type == entity for i in range(span.start, span.end) if not text[i].isspace()}


def score_spans(
    text: str, gold: Sequence[GoldSpan], predicted: Sequence[GoldSpan], entities: Sequence[str] = SCORED_ENTITIES
) -> dict[str, CharCounts]:
    """Character counts per entity type for one text (see the module docstring for the rule)."""
    counts: dict[str, CharCounts] = {}
    for entity in entities:
        expected = _characters(text, gold, entity)
        found = _characters(text, predicted, entity)
        counts[entity] = CharCounts(tp=len(expected & found), fp=len(found - expected), fn=len(expected - found))
    return counts


class _Row(msgspec.Struct):
    text: str
    spans: list[GoldSpan]
    lang: str = "en"


def _rows(rows: Sequence[Mapping[str, Any]]) -> list[_Row]:
    return [msgspec.convert(row, _Row, strict=False) for row in rows]


def _pii_config(policy: Policy | None, stage: Stage) -> PiiConfig:
    """The policy's PII section for ``stage`` (thresholds, allow-lists, language...) with every scored entity set to
    redact and nothing else looked for, so the scores measure detection and not the policy's choice of entities."""
    entities: dict[str, str] = dict.fromkeys(SCORED_ENTITIES, "redact")
    section = None
    if policy is not None:
        section = (policy.input if stage == "input" else policy.output).pii
    if section is None:
        return msgspec.convert({"score_threshold": DEFAULT_SCORE_THRESHOLD, "entities": entities}, PiiConfig)
    return msgspec.structs.replace(section, entities=entities)  # type: ignore[arg-type]


def _check_predictions(check: Check, texts: Sequence[str], config: PiiConfig, stage: Stage) -> list[list[GoldSpan]]:
    predictions: list[list[GoldSpan]] = []
    for first in range(0, len(texts), BATCH_SIZE):
        items = [
            CheckItem(text=text, config=config, stage=stage, scope=RequestScope())
            for text in texts[first : first + BATCH_SIZE]
        ]
        for result in check.run(items):
            predictions.append([GoldSpan(f.type, f.start, f.end) for f in result.findings])
    return predictions


def vanilla_presidio(spacy_model: str) -> Any:
    """Presidio's ``AnalyzerEngine`` as shipped: its default NLP configuration with only the spaCy model changed,
    its default recognizers, no extras."""
    import presidio_analyzer
    import yaml
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    conf_path = Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml"
    conf = yaml.safe_load(conf_path.read_text(encoding="utf-8"))
    conf["models"] = [{"lang_code": "en", "model_name": spacy_model}]
    return AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=conf).create_engine())


def _vanilla_predictions(analyzer: Any, texts: Sequence[str]) -> list[list[GoldSpan]]:
    return [
        [
            GoldSpan(r.entity_type, r.start, r.end)
            for r in analyzer.analyze(text=text, language="en", entities=list(SCORED_ENTITIES))
        ]
        for text in texts
    ]


def _totals(rows: Sequence[_Row], predictions: Sequence[Sequence[GoldSpan]]) -> dict[str, CharCounts]:
    totals = {entity: CharCounts() for entity in SCORED_ENTITIES}
    for row, predicted in zip(rows, predictions, strict=True):
        for entity, counts in score_spans(row.text, row.spans, predicted).items():
            totals[entity].add(counts)
    return totals


def _pooled(totals: Mapping[str, CharCounts]) -> CharCounts:
    pooled = CharCounts()
    for counts in totals.values():
        pooled.add(counts)
    return pooled


def _macro_f2(totals: Mapping[str, CharCounts]) -> float:
    present = [counts for counts in totals.values() if counts.tp + counts.fn]
    return sum(counts.f2 for counts in present) / len(present) if present else 0.0


def evaluate(
    rows: Sequence[Mapping[str, Any]],
    checks: Mapping[str, Check],
    policy: Policy | None,
    stage: Stage,
    *,
    baseline: bool = True,
) -> list[Report]:
    """Score the ``pii`` check on ``rows`` (``{"text", "spans": [{"type", "start", "end"}]}``) per entity type, with
    vanilla presidio's figures beside them unless ``baseline`` is false."""
    parsed = _rows(rows)
    texts = [row.text for row in parsed]
    check = checks["pii"]
    started = time.perf_counter()
    guard_totals = _totals(parsed, _check_predictions(check, texts, _pii_config(policy, stage), stage))
    ms_per_text = (time.perf_counter() - started) * 1000 / max(len(texts), 1)
    vanilla_totals: dict[str, CharCounts] | None = None
    if baseline:
        spacy_model = getattr(check, "spacy_model", None)
        if spacy_model is None:
            raise ValueError("the pii check does not say which spaCy model it uses: cannot build the baseline")
        vanilla_totals = _totals(parsed, _vanilla_predictions(vanilla_presidio(spacy_model), texts))

    columns = ["entity", "gold chars", "precision", "recall", "F2"]
    if vanilla_totals is not None:
        columns += ["vanilla P", "vanilla R", "vanilla F2"]

    def line(name: str, counts: CharCounts, vanilla: CharCounts | None) -> list[str | int | float]:
        cells: list[str | int | float] = [name, counts.tp + counts.fn, *_prf(counts)]
        return cells + (list(_prf(vanilla)) if vanilla is not None else [])

    table = [
        line(entity, guard_totals[entity], vanilla_totals[entity] if vanilla_totals else None)
        for entity in SCORED_ENTITIES
    ]
    pooled = _pooled(guard_totals)
    table.append(line("all (micro)", pooled, _pooled(vanilla_totals) if vanilla_totals else None))
    summary = {
        "f2": round(pooled.f2, 4),
        "precision": round(pooled.precision, 4),
        "recall": round(pooled.recall, 4),
        "f2_macro": round(_macro_f2(guard_totals), 4),
        "texts": float(len(texts)),
        "ms_per_text": round(ms_per_text, 2),
        **{f"recall.{entity}": round(guard_totals[entity].recall, 4) for entity in SCORED_ENTITIES},
    }
    if vanilla_totals is not None:
        summary["vanilla_f2"] = round(_pooled(vanilla_totals).f2, 4)
        summary["vanilla_f2_macro"] = round(_macro_f2(vanilla_totals), 4)
    stage_name = f"{policy.name} {stage}" if policy is not None else f"default config, {stage}"
    title = f"PII by character overlap ({stage_name}; {len(texts)} texts)"
    return [Report(title=title, columns=columns, rows=table, summary=summary)]


def _prf(counts: CharCounts) -> tuple[float, float, float]:
    return round(counts.precision, 4), round(counts.recall, 4), round(counts.f2, 4)
