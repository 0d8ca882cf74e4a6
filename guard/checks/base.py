"""The check protocol and its frozen results.

A check receives a batch of :class:`CheckItem` — texts from one or many concurrent requests, each with its own
policy section, stage and request scope — and returns one :class:`CheckResult` per item, in order. Batching across
requests is what makes spaCy's ``nlp.pipe``, detoxify and the embedding model fast; a check groups items by config
itself where it needs to. Checks never store or log the texts they see.

A check whose rewrite is a *redaction* (PII, secrets) says so with the class attribute ``redacts = True``: the
pipeline then gives it every message as sent (assistant turns too, never a stream's released context), takes its
rewrite as the text for everything after the check, and its findings as the request's data subjects (see
:func:`redacts`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import msgspec

from guard.checks.normalize import normalize
from guard.errors import GuardError
from guard.policy import Action

__all__ = [
    "PLACEHOLDER",
    "Check",
    "CheckItem",
    "CheckResult",
    "CheckUnavailable",
    "Finding",
    "RequestScope",
    "Rewrite",
    "Stage",
    "redacts",
    "subject_value",
]

Stage = Literal["input", "output"]

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
"""The typed, numbered placeholders PII redaction writes (``<PERSON_1>``)."""


class CheckUnavailable(GuardError, RuntimeError):
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
    detail: str | None = None
    """Which layer or rule found it (``deny_rule``, ``embedding``, ``judge``, ``base64``...), never the text."""
    tool_call: str | None = None
    """For a finding in a tool call the model generated, or in a tool's result: the call's id."""
    path: str | None = None
    """For a finding in a generated tool call: where (``function.name``, ``arguments.to``, ``arguments.cc[1]``);
    ``start``/``end`` then index that argument's string value. For a function the policy denies: the request's
    ``tools.<index>`` or ``tool_choice``."""


class Rewrite(msgspec.Struct, frozen=True, kw_only=True):
    """One replacement a redacting check made: ``text[start:end]`` of the text as sent became ``text``."""

    start: int
    end: int
    text: str


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """The findings for one text and, for checks that rewrite (PII), the rewritten text.

    ``scores`` are the check's raw scores for the text (e.g. every toxicity label), recorded in the audit row
    whether or not they crossed a threshold."""

    findings: tuple[Finding, ...] = ()
    text: str | None = None
    rewrites: tuple[Rewrite, ...] = ()
    """A redacting check's replacements, in text order: what ``text`` is made of, so that the stage can combine the
    rewrites of several redacting checks (PII and secrets) over one text."""
    scores: dict[str, float] = msgspec.field(default_factory=dict)


@dataclass(slots=True)
class RequestScope:
    """State shared by the checks across the texts of one request and dropped with it (never logged or stored).

    Placeholders are numbered per entity type in order of first appearance, consistently across all the
    messages of the request and its output: the same value always gets the same placeholder. The originals
    behind them form the request's vault, used to restore placeholders in the answer for this caller only.
    """

    _placeholders: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    _originals: dict[str, str] = field(default_factory=dict, repr=False)
    _counters: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int), repr=False)
    _restorable: frozenset[str] = field(default=frozenset(), repr=False)

    def placeholder(self, entity: str, original: str) -> str:
        key = (entity, original)
        if key not in self._placeholders:
            self._counters[entity] += 1
            token = f"<{entity}_{self._counters[entity]}>"
            self._placeholders[key] = token
            self._originals[token] = original
        return self._placeholders[key]

    def seal_input(self) -> None:
        """Mark the end of the input stage: only values the caller sent may be restored. PII that first appears
        in the model's output (memorised or invented personal data) stays redacted for the caller too."""
        self._restorable = frozenset(self._originals)

    def restore(self, text: str) -> str:
        """``text`` with this request's input placeholders replaced by their originals (others are left alone)."""
        return PLACEHOLDER.sub(
            lambda m: self._originals[m.group(0)] if m.group(0) in self._restorable else m.group(0), text
        )


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One text to check, with the policy section that configures the check for it."""

    text: str
    config: Any
    stage: Stage
    scope: RequestScope = field(default_factory=RequestScope)
    role: str | None = None
    """The message's role (``user``, ``system``, ``assistant``) or ``None`` for outputs and scans."""
    prompt: str | None = None
    """For output items: the (redacted) last user message the answer responds to, for checks that judge the pair."""


class Check(Protocol):
    """One safety check; ``name`` is the key of its policy section and of its findings.

    A check that redacts also sets the class attribute ``redacts = True`` (see the module docstring)."""

    name: ClassVar[str]

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        """One result per item, in order. Items may come from many requests and carry different configs."""
        ...


def redacts(check: Check) -> bool:
    """Whether ``check``'s rewrite is a redaction (its class sets ``redacts = True``, as the PII check does)."""
    return getattr(check, "redacts", False) is True


def subject_value(found: str) -> str:
    """The form of a value a redacting check found that names its data subject: normalised, so that an evasive
    spelling (fullwidth digits, zero-width characters, homoglyphs) is the same subject."""
    return normalize(found).text
