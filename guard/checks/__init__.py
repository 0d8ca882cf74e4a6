"""Safety checks: one file per check behind one protocol (:mod:`guard.checks.base`)."""

from __future__ import annotations

from guard.checks.base import Check, CheckItem, CheckResult, CheckUnavailable, Finding, RequestScope, Stage
from guard.checks.registry import CheckModels, CheckRegistry

__all__ = [
    "Check",
    "CheckItem",
    "CheckModels",
    "CheckRegistry",
    "CheckResult",
    "CheckUnavailable",
    "Finding",
    "RequestScope",
    "Stage",
]
