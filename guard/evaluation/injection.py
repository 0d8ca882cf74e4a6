"""Injection evaluation: labelled texts (``injection`` | ``jailbreak`` | ``benign`` for direct prompts,
``indirect_injection`` | ``benign_document`` for documents) through a policy's input injection check.

A row is *flagged* when the check has a finding with a non-``redact`` action at the policy's threshold (a
neutralised control token alone is a rewrite, not a flag). For ROC-AUC and calibration each row's score is the
strongest override score at any threshold (the check is run a second time with a near-zero threshold). Reported:
attacks flagged per language, benign look-alikes (``hard_negative``) and other benign rows flagged, documents, the
layer (finding type and detail) that fired.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from guard.checks import CheckItem, CheckRegistry
from guard.evaluation.metrics import calibration_bins, expected_calibration_error, rate, roc_auc
from guard.evaluation.report import Report
from guard.policy import Policy

__all__ = ["ATTACK_LABELS", "LABELS", "evaluate", "score_rows"]

ATTACK_LABELS = frozenset({"injection", "jailbreak", "indirect_injection"})
LABELS = ATTACK_LABELS | {"benign", "benign_document"}
"""The labels an injection dataset uses (how ``guard eval`` recognises one)."""
BATCH_SIZE = 64
_ANY_SCORE = 1e-6


@dataclass(frozen=True, slots=True)
class Scored:
    """One row: its label, language, hard-negative flag, whether it was flagged, its score and the layers."""

    label: str
    lang: str
    hard_negative: bool
    flagged: bool
    score: float
    layers: frozenset[str]


def score_rows(rows: Sequence[Mapping[str, Any]], checks: CheckRegistry, policy: Policy) -> list[Scored]:
    """Every row through the policy's input injection check (as a user message)."""
    config = policy.input.injection
    if config is None or "injection" not in checks:
        raise LookupError("the policy has no input injection check, or no injection check is loaded")
    loose = msgspec.structs.replace(config, threshold=_ANY_SCORE)
    check = checks["injection"]
    scored: list[Scored] = []
    for start in range(0, len(rows), BATCH_SIZE):
        batch = rows[start : start + BATCH_SIZE]
        texts = [str(row["text"]) for row in batch]
        results = check.run([CheckItem(text=t, config=config, stage="input", role="user") for t in texts])
        loose_results = check.run([CheckItem(text=t, config=loose, stage="input", role="user") for t in texts])
        for row, result, everything in zip(batch, results, loose_results, strict=True):
            fired = [f for f in result.findings if f.action != "redact"]
            scored.append(
                Scored(
                    label=str(row["label"]),
                    lang=str(row.get("lang") or "und"),
                    hard_negative=bool(row.get("hard_negative")),
                    flagged=bool(fired),
                    score=max((f.score for f in everything.findings if f.action != "redact"), default=0.0),
                    layers=frozenset(f"{f.type}:{f.detail}" for f in fired),
                )
            )
    return scored


def _line(name: str, group: list[Scored]) -> list[str | int | float]:
    flagged = sum(s.flagged for s in group)
    return [name, len(group), flagged, rate(flagged, len(group))]


def _groups(scored: list[Scored]) -> dict[str, list[Scored]]:
    groups: dict[str, list[Scored]] = {}
    attacks = [s for s in scored if s.label in ("injection", "jailbreak")]
    for lang in sorted({s.lang for s in attacks}, key=lambda lang: (lang != "en", lang)):
        groups[f"attacks {lang}"] = [s for s in attacks if s.lang == lang]
    benign = [s for s in scored if s.label == "benign"]
    groups["benign look-alikes (hard_negative)"] = [s for s in benign if s.hard_negative]
    groups["other benign"] = [s for s in benign if not s.hard_negative]
    groups["indirect injections"] = [s for s in scored if s.label == "indirect_injection"]
    groups["clean documents"] = [s for s in scored if s.label == "benign_document"]
    return {name: group for name, group in groups.items() if group}


def evaluate(
    rows: Sequence[Mapping[str, Any]], checks: CheckRegistry, policy: Policy, stage: Literal["input", "output"]
) -> list[Report]:
    """Flag rates, ROC-AUC, calibration and layers of the policy's injection check on ``rows`` (``stage`` is
    ignored: the injection check reads input)."""
    del stage
    scored = score_rows(rows, checks, policy)
    groups = _groups(scored)
    direct = [s for s in scored if s.label in ("injection", "jailbreak", "benign")]
    documents = [s for s in scored if s.label in ("indirect_injection", "benign_document")]
    scores, labels = [s.score for s in scored], [s.label in ATTACK_LABELS for s in scored]
    summary = {
        f"flagged {name}": float(rate(sum(s.flagged for s in group), len(group))) for name, group in groups.items()
    }
    summary["roc_auc_direct"] = roc_auc([s.score for s in direct], [s.label in ATTACK_LABELS for s in direct])
    summary["roc_auc_documents"] = roc_auc([s.score for s in documents], [s.label in ATTACK_LABELS for s in documents])
    summary["ece"] = expected_calibration_error(scores, labels)
    flags = Report(
        title="Injection: rows flagged by the input injection check",
        columns=["group", "rows", "flagged", "rate"],
        rows=[_line(name, group) for name, group in groups.items()],
        summary=summary,
    )
    layers: Counter[str] = Counter(layer for s in scored if s.label in ATTACK_LABELS for layer in s.layers)
    false: Counter[str] = Counter(layer for s in scored if s.label not in ATTACK_LABELS for layer in s.layers)
    layer_report = Report(
        title="Injection: the layer (finding type:detail) behind each flag",
        columns=["layer", "attacks", "benign"],
        rows=[[layer, layers[layer], false[layer]] for layer in sorted(set(layers) | set(false))],
    )
    reliability = Report(
        title="Injection: calibration of the override score (reliability table)",
        columns=["score_bin", "rows", "mean_score", "attack_rate"],
        rows=[list(row) for row in calibration_bins(scores, labels)],
    )
    return [flags, layer_report, reliability]
