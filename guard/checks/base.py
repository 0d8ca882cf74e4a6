"""The check protocol and its frozen results.

A check takes the texts of one request (the messages, or the one output text) with its policy section and
returns one :class:`CheckResult` per text. Checks never store or log the texts they see.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, TypeVar

import msgspec

from guard.policy import Action

__all__ = [
    "Check",
    "CheckResult",
    "CheckUnavailable",
    "Finding",
    "RequestScope",
    "Stage",
]

Stage = Literal["input", "output"]
ConfigT_contra = TypeVar("ConfigT_contra", contravariant=True)


class CheckUnavailable(RuntimeError):
    """A check's model cannot be loaded; the message says what is missing and how to get it."""


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One thing a check found. ``start``/``end`` index the text as sent, in Unicode code points."""

    check: str
    type: str
    score: float
    threshold: float
    action: Action
    start: int
    end: int
    clause: str | None = None
    stage: Stage | None = None
    message_index: int | None = None


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """The findings for one text and, for checks that rewrite (PII), the rewritten text."""

    findings: tuple[Finding, ...] = ()
    text: str | None = None


@dataclass(slots=True)
class RequestScope:
    """State shared by the checks across the texts of one request and dropped with it (never logged or stored).

    Placeholders are numbered per entity type in order of first appearance, consistently across all the
    messages of the request and its output: the same value always gets the same placeholder.
    """

    _placeholders: dict[tuple[str, str], str] = field(default_factory=dict)
    _counters: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def placeholder(self, entity: str, original: str) -> str:
        key = (entity, original)
        if key not in self._placeholders:
            self._counters[entity] += 1
            self._placeholders[key] = f"<{entity}_{self._counters[entity]}>"
        return self._placeholders[key]


class Check(Protocol[ConfigT_contra]):
    """One safety check; ``name`` is the key of its policy section and of its findings."""

    name: ClassVar[str]

    def run(self, texts: Sequence[str], config: ConfigT_contra, stage: Stage, scope: RequestScope) -> list[CheckResult]:
        """One result per text, in order."""
        ...
