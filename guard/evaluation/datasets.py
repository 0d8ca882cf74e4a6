"""``guard eval``: labelled datasets run through the real checks, scored per entity type / category.

A dataset is JSON Lines; its first row says its kind: rows with ``"spans"`` are PII (:mod:`guard.evaluation.pii`),
rows with a ``"toxicity"`` label column toxicity (:mod:`guard.evaluation.toxicity`), rows whose ``"label"`` is an
injection label (:data:`guard.evaluation.injection.LABELS`) injection (:mod:`guard.evaluation.injection`), other rows
with ``"label"`` prohibited use (:mod:`guard.evaluation.prohibited`). Each kind returns :class:`Report` tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from guard.checks import CheckRegistry
from guard.errors import GuardError
from guard.evaluation.injection import LABELS as INJECTION_LABELS
from guard.evaluation.injection import evaluate as evaluate_injection
from guard.evaluation.pii import evaluate as evaluate_pii
from guard.evaluation.prohibited import evaluate as evaluate_prohibited
from guard.evaluation.report import Report
from guard.evaluation.toxicity import evaluate as evaluate_toxicity
from guard.policy import Policy

__all__ = ["DatasetError", "dataset_kind", "evaluate", "read_dataset"]

_EVALUATORS: dict[str, Callable[..., list[Report]]] = {
    "pii": evaluate_pii,
    "prohibited": evaluate_prohibited,
    "toxicity": evaluate_toxicity,
    "injection": evaluate_injection,
}


class DatasetError(GuardError, ValueError):
    """A dataset file that cannot be evaluated (no rows, or rows of no known kind)."""


def read_dataset(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """The dataset's kind (``pii``, ``toxicity``, ``injection`` or ``prohibited``) and its rows."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise DatasetError(f"{path} has no rows")
    return dataset_kind(path, rows[0]), rows


def dataset_kind(path: Path, first: dict[str, Any]) -> str:
    """The kind of a dataset whose first row is ``first``."""
    if "spans" in first:
        return "pii"
    if "toxicity" in first:
        return "toxicity"
    if "label" in first:
        return "injection" if first["label"] in INJECTION_LABELS else "prohibited"
    raise DatasetError(
        f"{path}: rows need a 'spans' (PII), 'toxicity' (toxicity) or 'label' (injection, prohibited use) key"
    )


def evaluate(
    kind: str, rows: list[dict[str, Any]], checks: CheckRegistry, policy: Policy, stage: Literal["input", "output"]
) -> list[Report]:
    """The reports of ``rows`` (a dataset of ``kind``) through ``policy``'s checks for ``stage``."""
    return _EVALUATORS[kind](rows, checks, policy, stage)
