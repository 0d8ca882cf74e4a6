"""``guard eval``: labelled datasets run through the real checks, scored per entity type / category.

A dataset is JSON Lines; its first row says its kind: rows with ``"spans"`` are PII (:mod:`guard.evaluation.pii`),
rows with ``"label"`` prohibited use (:mod:`guard.evaluation.prohibited`). Each kind returns :class:`Report` tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from guard.checks import CheckRegistry
from guard.errors import GuardError
from guard.evaluation.pii import evaluate as evaluate_pii
from guard.evaluation.prohibited import evaluate as evaluate_prohibited
from guard.evaluation.report import Report
from guard.policy import Policy

__all__ = ["DatasetError", "evaluate", "read_dataset"]

_EVALUATORS: dict[str, Callable[..., list[Report]]] = {"pii": evaluate_pii, "prohibited": evaluate_prohibited}


class DatasetError(GuardError, ValueError):
    """A dataset file that cannot be evaluated (no rows, or rows of no known kind)."""


def read_dataset(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """The dataset's kind (``pii`` or ``prohibited``) and its rows."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise DatasetError(f"{path} has no rows")
    kind = "pii" if "spans" in rows[0] else "prohibited" if "label" in rows[0] else ""
    if not kind:
        raise DatasetError(f"{path}: rows need a 'spans' (PII) or a 'label' (prohibited use) key")
    return kind, rows


def evaluate(
    kind: str, rows: list[dict[str, Any]], checks: CheckRegistry, policy: Policy, stage: Literal["input", "output"]
) -> list[Report]:
    """The reports of ``rows`` (a dataset of ``kind``) through ``policy``'s checks for ``stage``."""
    return _EVALUATORS[kind](rows, checks, policy, stage)
