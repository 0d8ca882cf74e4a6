"""Toxicity evaluation: comments labelled with detoxify's ``toxicity`` (0/1; null rows are skipped) through a
policy's output toxicity check.

A row is *acted on* when the check has any finding (a label at or above its threshold). Reported: the share of
toxic comments acted on (recall), of non-toxic ones and of the ``hard_negative`` ones (benign look-alikes), per
language; ROC-AUC of the ``toxicity`` score; its calibration (expected calibration error and a reliability table);
and its operating points (the same three shares were the ``toxicity`` threshold another value, the other labels left
out), where a policy author reads which threshold a dev split allows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from guard.checks import CheckItem, CheckRegistry
from guard.evaluation.metrics import calibration_bins, expected_calibration_error, rate, roc_auc
from guard.evaluation.report import Report
from guard.policy import Policy

__all__ = ["Scored", "evaluate", "operating_points", "score_rows"]

BATCH_SIZE = 32
OPERATING_POINTS = tuple(step / 20 for step in range(4, 20))
"""The ``toxicity`` thresholds of the operating-points table: 0.20 to 0.95 by 0.05."""


@dataclass(frozen=True, slots=True)
class Scored:
    """One comment: its label, language, whether it is a hard negative, its score and whether the check acted."""

    toxic: bool
    lang: str
    hard_negative: bool
    score: float
    acted: bool


def score_rows(rows: Sequence[Mapping[str, Any]], checks: CheckRegistry, policy: Policy) -> list[Scored]:
    """Every labelled row (``toxicity`` not null) scored by the policy's output toxicity check."""
    config = policy.output.toxicity
    if config is None or "toxicity" not in checks:
        raise LookupError("the policy has no output toxicity check, or no toxicity check is loaded")
    labelled = [row for row in rows if row.get("toxicity") is not None]
    scored: list[Scored] = []
    for start in range(0, len(labelled), BATCH_SIZE):
        batch = labelled[start : start + BATCH_SIZE]
        results = checks["toxicity"].run([CheckItem(text=str(r["text"]), config=config, stage="output") for r in batch])
        for row, result in zip(batch, results, strict=True):
            scored.append(
                Scored(
                    toxic=float(row["toxicity"]) >= 0.5,
                    lang=str(row.get("lang", "en")),
                    hard_negative=bool(row.get("hard_negative")),
                    score=float(result.scores.get("toxicity", 0.0)),
                    acted=bool(result.findings),
                )
            )
    return scored


def _rates(name: str, group: list[Scored]) -> list[str | int | float]:
    toxic = [s for s in group if s.toxic]
    clean = [s for s in group if not s.toxic]
    hard = [s for s in clean if s.hard_negative]
    return [
        name,
        len(toxic),
        rate(sum(s.acted for s in toxic), len(toxic)),
        len(clean),
        rate(sum(s.acted for s in clean), len(clean)),
        len(hard),
        rate(sum(s.acted for s in hard), len(hard)),
        roc_auc([s.score for s in group], [s.toxic for s in group]),
    ]


def evaluate(
    rows: Sequence[Mapping[str, Any]], checks: CheckRegistry, policy: Policy, stage: Literal["input", "output"]
) -> list[Report]:
    """Acted-on rates, ROC-AUC and calibration of the policy's toxicity check on ``rows`` (``stage`` is ignored:
    the toxicity check is an output check)."""
    del stage
    scored = score_rows(rows, checks, policy)
    langs = sorted({s.lang for s in scored}, key=lambda lang: (lang != "en", lang))
    table = [_rates("all", scored)] + [_rates(lang, [s for s in scored if s.lang == lang]) for lang in langs]
    overall = table[0]
    scores, labels = [s.score for s in scored], [s.toxic for s in scored]
    summary = {
        "toxic_acted": float(overall[2]),
        "non_toxic_acted": float(overall[4]),
        "hard_negative_acted": float(overall[6]),
        "roc_auc": float(overall[7]),
        "ece": expected_calibration_error(scores, labels),
    }
    rates = Report(
        title="Toxicity: comments acted on (any label at its threshold) and ROC-AUC of the toxicity score",
        columns=["lang", "toxic", "toxic_acted", "non_toxic", "non_toxic_acted", "hard_neg", "hard_neg_acted", "auc"],
        rows=table,
        summary=summary,
    )
    reliability = Report(
        title="Toxicity: calibration of the toxicity score (reliability table)",
        columns=["score_bin", "rows", "mean_score", "toxic_rate"],
        rows=[list(row) for row in calibration_bins(scores, labels)],
    )
    return [rates, reliability, operating_points(scored)]


def operating_points(scored: list[Scored]) -> Report:
    """The share of toxic, non-toxic and hard-negative comments whose ``toxicity`` score reaches each threshold."""
    toxic = [s.score for s in scored if s.toxic]
    clean = [s for s in scored if not s.toxic]
    hard = [s.score for s in clean if s.hard_negative]
    rows: list[list[str | int | float]] = [
        [
            threshold,
            rate(sum(x >= threshold for x in toxic), len(toxic)),
            rate(sum(s.score >= threshold for s in clean), len(clean)),
            rate(sum(x >= threshold for x in hard), len(hard)),
        ]
        for threshold in OPERATING_POINTS
    ]
    return Report(
        title="Toxicity: operating points of the toxicity score alone (share at or above each threshold)",
        columns=["threshold", "toxic", "non_toxic", "hard_neg"],
        rows=rows,
    )
