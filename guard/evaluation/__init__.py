"""Offline evaluation: policies and checks measured without serving a request.

- :mod:`~guard.evaluation.datasets` (``guard eval``): labelled datasets scored per entity type or category
  (:mod:`~guard.evaluation.pii`, :mod:`~guard.evaluation.prohibited`), as :class:`Report` tables.
- :mod:`~guard.evaluation.golden` (``guard policy test``): golden cases, each an expected decision and findings.
- :mod:`~guard.evaluation.replay` (``guard policy replay``): stored decisions re-evaluated under a candidate policy.
- :mod:`~guard.evaluation.shadow` (``guard policy shadow-report``): the live shadow evaluations summarised.
- :mod:`~guard.evaluation.runner`: the one module that runs checks through the pipeline for all of them.
"""

from __future__ import annotations

from guard.evaluation.datasets import DatasetError, evaluate, read_dataset
from guard.evaluation.golden import Case, Outcome, Suite, SuiteError, load_suite, run_case, run_suites, suite_files
from guard.evaluation.replay import alone, flip_report, replay_all, replay_decision
from guard.evaluation.report import Report
from guard.evaluation.runner import Checked, CheckRunner, load_checks
from guard.evaluation.shadow import shadow_summary
from guard.evaluation.stored import read_decisions

__all__ = [
    "Case",
    "CheckRunner",
    "Checked",
    "DatasetError",
    "Outcome",
    "Report",
    "Suite",
    "SuiteError",
    "alone",
    "evaluate",
    "flip_report",
    "load_checks",
    "load_suite",
    "read_dataset",
    "read_decisions",
    "replay_all",
    "replay_decision",
    "run_case",
    "run_suites",
    "shadow_summary",
    "suite_files",
]
