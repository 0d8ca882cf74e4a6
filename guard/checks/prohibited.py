"""Prohibited-use deny rules: case-insensitive patterns per Gemma Prohibited Use Policy category."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import ClassVar

from guard.checks.base import CheckItem, CheckResult, Finding
from guard.policy import CLAUSES, ProhibitedUseConfig

__all__ = ["ProhibitedUseCheck"]


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


class ProhibitedUseCheck:
    """Each match of a category's pattern is a finding citing that category's clause."""

    name: ClassVar[str] = "prohibited_use"

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        results = []
        for item in items:
            config: ProhibitedUseConfig = item.config
            findings = [
                Finding(
                    check=self.name,
                    type=category,
                    score=1.0,
                    threshold=1.0,
                    action=rule.action,
                    start=match.start(),
                    end=match.end(),
                    clause=CLAUSES[category],
                    stage=item.stage,
                )
                for category, rule in config.categories.items()
                for pattern in rule.patterns
                for match in _compiled(pattern).finditer(item.text)
            ]
            results.append(CheckResult(findings=tuple(findings)))
        return results
