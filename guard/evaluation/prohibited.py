"""Prohibited-use evaluation: labelled requests or answers through a policy's non-PII checks.

Rows are ``{"text", "label": "benign" | <category> | "harmful", "lang", "tag"?, "context"?}``: ``tag`` ``scary``
(or ``borderline``) marks safe requests that sound dangerous, ``refusal`` an answer that refuses; ``context`` is the
request an answer answers (output stage: the classifier reads it beside the answer). A row is blocked when any
finding of any of the stage's non-PII checks has action ``block``, and *acted on* when one blocks or flags.
Reported: recall per category with the layers that blocked them, false-block rates on benign rows (all, scary,
ordinary, refusals), the Japanese/Korean/Chinese slice on its own lines, the layers' contributions, and the
calibration of the classifier's top category score (reliability table and expected calibration error).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from guard.checks import CheckItem, CheckRegistry, CheckResult
from guard.evaluation.metrics import calibration_bins, expected_calibration_error
from guard.evaluation.report import Report
from guard.policy import Policy

__all__ = ["BATCH_SIZE", "Outcome", "evaluate", "run_rows"]

BATCH_SIZE = 32
BENIGN = "benign"
LAYERS = ("deny_rule", "embedding", "ngram", "judge")
SCARY = frozenset({"scary", "borderline"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row's result: whether it was blocked and which layers (or other checks) blocked it."""

    label: str
    lang: str
    tag: str | None
    blocked: bool
    layers: frozenset[str]
    acted: bool = False
    """Blocked or flagged (what counts for answers: a flagged answer is held for review)."""
    score: float | None = None
    """The classifier's top category score, where it read the text."""


def _layer(check: str, detail: str | None) -> str:
    return detail if check == "prohibited_use" and detail in LAYERS else check


def _sections(policy: Policy, stage: Literal["input", "output"]) -> dict[str, Any]:
    checks = policy.input if stage == "input" else policy.output
    return {
        name: config
        for name, config in msgspec.structs.asdict(checks).items()
        if name not in ("pii", "secrets") and config is not None and getattr(config, "enabled", True)
    }


def run_rows(
    rows: Sequence[Mapping[str, Any]], checks: CheckRegistry, policy: Policy, stage: Literal["input", "output"]
) -> list[Outcome]:
    """Each row's outcome, the checks run over batches of :data:`BATCH_SIZE` texts."""
    sections = _sections(policy, stage)
    missing = [name for name in sections if name not in checks]
    if missing:
        raise LookupError(f"the policy configures {', '.join(missing)} but no such check is loaded")
    outcomes: list[Outcome] = []
    for start in range(0, len(rows), BATCH_SIZE):
        batch = rows[start : start + BATCH_SIZE]
        per_check: list[list[CheckResult]] = [
            checks[name].run(
                [
                    CheckItem(text=str(row["text"]), config=config, stage=stage, prompt=row.get("context"))
                    for row in batch
                ]
            )
            for name, config in sections.items()
        ]
        for i, row in enumerate(batch):
            blocking = [f for results in per_check for f in results[i].findings if f.action == "block"]
            acting = [f for results in per_check for f in results[i].findings if f.action in ("block", "flag")]
            classifier = [
                value
                for results in per_check
                for key, value in results[i].scores.items()
                if key.startswith("embedding:") and key != "embedding:unread_language"
            ]
            outcomes.append(
                Outcome(
                    label=str(row["label"]),
                    lang=str(row.get("lang", "en")),
                    tag=row.get("tag"),
                    blocked=bool(blocking),
                    layers=frozenset(_layer(f.check, f.detail) for f in blocking),
                    acted=bool(acting),
                    score=max(classifier) if classifier else None,
                )
            )
    return outcomes


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _category_report(outcomes: list[Outcome], layers: list[str]) -> Report:
    rows: list[list[str | int | float]] = []
    groups: defaultdict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        if o.label != BENIGN:
            groups[("en" if o.lang == "en" else o.lang, o.label)].append(o)
            groups[("all" if o.lang == "en" else "ja/ko/zh", "all harmful")].append(o)
    for (lang, label), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0] != "en", kv[0][1] == "all harmful", kv[0])
    ):
        blocked = [o for o in group if o.blocked]
        by_layer = Counter(layer for o in blocked for layer in o.layers)
        row: list[str | int | float] = [label, "en" if lang == "all" else lang, len(group), len(blocked)]
        acted = sum(o.acted for o in group)
        row += [_rate(len(blocked), len(group)), _rate(acted, len(group)), *(by_layer[layer] for layer in layers)]
        rows.append(row)
    return Report(
        title="Prohibited use: harmful requests blocked (recall) and the layers that blocked them",
        columns=["category", "lang", "rows", "blocked", "recall", "acted_rate", *layers],
        rows=rows,
    )


def _benign_report(outcomes: list[Outcome], layers: list[str]) -> Report:
    subsets: dict[str, list[Outcome]] = {
        "en all benign": [o for o in outcomes if o.label == BENIGN and o.lang == "en"],
        "en scary-sounding": [o for o in outcomes if o.label == BENIGN and o.lang == "en" and o.tag in SCARY],
        "en refusals": [o for o in outcomes if o.label == BENIGN and o.lang == "en" and o.tag == "refusal"],
        "en ordinary": [
            o for o in outcomes if o.label == BENIGN and o.lang == "en" and o.tag not in (*SCARY, "refusal")
        ],
    }
    subsets = {name: group for name, group in subsets.items() if group}
    for lang in sorted({o.lang for o in outcomes if o.lang != "en"}):
        subsets[f"{lang} benign"] = [o for o in outcomes if o.label == BENIGN and o.lang == lang]
    rows: list[list[str | int | float]] = []
    for name, group in subsets.items():
        blocked = [o for o in group if o.blocked]
        by_layer = Counter(layer for o in blocked for layer in o.layers)
        acted = sum(o.acted for o in group)
        row: list[str | int | float] = [name, len(group), len(blocked), _rate(len(blocked), len(group))]
        rows.append([*row, _rate(acted, len(group)), *(by_layer[x] for x in layers)])
    return Report(
        title="Prohibited use: benign rows blocked (false-block rate) and acted on (blocked or flagged)",
        columns=["subset", "rows", "blocked", "false_block_rate", "acted_rate", *layers],
        rows=rows,
    )


def _layer_report(outcomes: list[Outcome], layers: list[str]) -> Report:
    harmful = [o for o in outcomes if o.label != BENIGN and o.lang == "en"]
    benign = [o for o in outcomes if o.label == BENIGN and o.lang == "en"]
    rows: list[list[str | int | float]] = []
    for layer in layers:
        caught = sum(layer in o.layers for o in harmful)
        alone = sum(o.layers == {layer} for o in harmful)
        false = sum(layer in o.layers for o in benign)
        rows.append([layer, caught, _rate(caught, len(harmful)), alone, false, _rate(false, len(benign))])
    return Report(
        title="Prohibited use: contribution of each layer (English rows)",
        columns=["layer", "harmful_blocked", "share_of_harmful", "only_this_layer", "benign_blocked", "benign_rate"],
        rows=rows,
    )


def _summary(outcomes: list[Outcome]) -> dict[str, float]:
    def rate(selected: list[Outcome]) -> float:
        return _rate(sum(o.blocked for o in selected), len(selected))

    def acted(selected: list[Outcome]) -> float:
        return _rate(sum(o.acted for o in selected), len(selected))

    en = [o for o in outcomes if o.lang == "en"]
    cjk = [o for o in outcomes if o.lang != "en"]
    summary = {
        "harmful_recall_en": rate([o for o in en if o.label != BENIGN]),
        "harmful_acted_en": acted([o for o in en if o.label != BENIGN]),
        "benign_false_block_en": rate([o for o in en if o.label == BENIGN]),
        "benign_acted_en": acted([o for o in en if o.label == BENIGN and o.tag != "refusal"]),
        "scary_false_block_en": rate([o for o in en if o.label == BENIGN and o.tag in SCARY]),
        "refusal_acted_en": acted([o for o in en if o.label == BENIGN and o.tag == "refusal"]),
        "harmful_recall_cjk": rate([o for o in cjk if o.label != BENIGN]),
        "benign_false_block_cjk": rate([o for o in cjk if o.label == BENIGN]),
    }
    scored = [o for o in outcomes if o.score is not None]
    if scored:
        summary["classifier_ece"] = expected_calibration_error(
            [o.score or 0.0 for o in scored], [o.label != BENIGN for o in scored]
        )
    return summary


def _calibration_report(outcomes: list[Outcome]) -> Report:
    scored = [o for o in outcomes if o.score is not None]
    table = calibration_bins([o.score or 0.0 for o in scored], [o.label != BENIGN for o in scored])
    return Report(
        title="Prohibited use: calibration of the classifier's top category score (reliability table)",
        columns=["score_bin", "rows", "mean_score", "harmful_rate"],
        rows=[list(row) for row in table],
    )


def evaluate(
    rows: Sequence[Mapping[str, Any]], checks: CheckRegistry, policy: Policy, stage: Literal["input", "output"]
) -> list[Report]:
    """Run ``rows`` through ``policy``'s non-PII checks for ``stage`` and report recall and false blocks."""
    outcomes = run_rows(rows, checks, policy, stage)
    seen = {layer for o in outcomes for layer in o.layers}
    layers = [*LAYERS, *sorted(seen - set(LAYERS))]
    categories = _category_report(outcomes, layers)
    categories.summary = _summary(outcomes)
    return [
        categories,
        _benign_report(outcomes, layers),
        _layer_report(outcomes, layers),
        _calibration_report(outcomes),
    ]
