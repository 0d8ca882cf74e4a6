"""Why a decision came out as it did: per finding, the check, the policy clause, score vs threshold, the action and
the redacted span. Thresholds come from the policy version that decided, which the caller reads from the store
(:func:`guard.store.policy_versions.load_stored_policy`).

Nothing raw: a span is reported only when the stored redacted text holds a placeholder (``<EMAIL_ADDRESS_1>``) at
the finding's position; any other text at those offsets is left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit.queries import linked_record_id
from guard.policy import Policy

__all__ = ["Explained", "FindingExplanation", "explain_findings", "explain_record"]

# The placeholders PII redaction writes (guard.checks.base.PLACEHOLDER; the audit layer does not import checks).
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")


class FindingExplanation(msgspec.Struct, kw_only=True):
    """One finding, explained against the policy that decided."""

    check: str
    type: str
    stage: str | None
    message_index: int | None
    tool_call: str | None = None
    """The tool call the finding is in (a generated call's id, or the call a tool result answers)."""
    path: str | None = None
    """Where in a generated call: ``function.name`` or ``arguments.<path>`` (offsets index that value)."""
    clause: str
    """The policy section path that set the rule, e.g. ``input.pii.entities.EMAIL_ADDRESS``."""
    rule: str | None
    """The recognizer, pattern or layer that matched (``EmailRecognizer``, ``deny_rule``, ``embedding``...)."""
    policy_clause: str | None
    """The Gemma Prohibited Use Policy clause the finding cites, where it cites one."""
    score: float
    threshold: float | None
    threshold_source: str
    """``policy`` (read from the stored policy version) or ``record`` (the threshold the finding recorded)."""
    action: str
    start: int
    end: int
    redacted_span: str | None
    """The placeholder at the finding's position in the stored redacted text; ``None`` when there is none."""


def _section(policy: Policy | None, stage: str, check: str) -> Any:
    stages = {"input": policy.input, "output": policy.output} if policy is not None else {}
    return getattr(stages.get(stage), check, None)


def _pii(config: Any, clause: str, kind: str, _: str) -> tuple[str, float | None]:
    if kind not in config.entities:
        return clause, None
    rule = config.rule(kind)
    return clause, rule.threshold if rule.threshold is not None else config.score_threshold


def _secrets(config: Any, clause: str, kind: str, _: str) -> tuple[str, float | None]:
    return (clause if kind in config.types else clause.rsplit(".types.", 1)[0] + ".action"), None


def _toxicity(config: Any, clause: str, kind: str, _: str) -> tuple[str, float | None]:
    return clause, config.thresholds.get(kind)


def _prohibited(config: Any, clause: str, kind: str, detail: str) -> tuple[str, float | None]:
    category = config.categories.get(kind)
    layer = detail.split(":", 1)[0]
    if category is None or layer not in ("deny_rule", "embedding", "judge"):
        return clause, None
    if layer == "deny_rule":
        return f"{clause}.patterns", 1.0
    return f"{clause}.{layer}", getattr(category, layer)


def _injection(config: Any, clause: str, _: str, __: str) -> tuple[str, float | None]:
    return clause, config.threshold


# Per check: the clause path under ``<stage>.`` and how to read the threshold from its policy section.
_CLAUSES: dict[str, tuple[str, Callable[[Any, str, str, str], tuple[str, float | None]]]] = {
    "pii": ("pii.entities.{type}", _pii),
    "secrets": ("secrets.types.{type}", _secrets),
    "toxicity": ("toxicity.thresholds.{type}", _toxicity),
    "prohibited_use": ("prohibited_use.categories.{type}", _prohibited),
    "injection": ("injection", _injection),
}


def _clause_and_threshold(finding: dict[str, Any], stage: str, policy: Policy | None) -> tuple[str, float | None]:
    check, kind = finding["check"], finding["type"]
    if check == "tools":  # a function the policy does not permit
        return "tools.denied", None
    arguments = (finding.get("path") or "").startswith("arguments")
    if check not in _CLAUSES:
        return f"{stage}.{check}", None
    template, threshold_of = _CLAUSES[check]
    config = _section(policy, stage, check)
    if arguments and policy is not None and policy.tools.arguments is not None:
        stage, config = "tools.arguments", getattr(policy.tools.arguments, check, None)
    clause = f"{stage}." + template.format(type=kind)
    return (clause, None) if config is None else threshold_of(config, clause, kind, finding.get("detail") or "")


def _texts(record: dict[str, Any]) -> tuple[list[str | None], str | None]:
    inputs = [m.get("content") if isinstance(m, dict) else None for m in record.get("input_redacted") or []]
    return inputs, record.get("output_redacted")


def _redacted_spans(record: dict[str, Any]) -> list[str | None]:
    """Each finding's placeholder in the stored redacted text, ``None`` where the text holds none there.

    Offsets index the text as sent; redaction replaced earlier spans with placeholders of other lengths, so walk each
    text's findings in order and shift by the difference of every placeholder found so far.
    """
    findings: list[dict[str, Any]] = record.get("findings") or []
    inputs, output = _texts(record)
    scan = record.get("route") == "/v1/scan"
    spans: list[str | None] = [None] * len(findings)
    by_text: dict[tuple[str, int], list[int]] = {}
    for position, finding in enumerate(findings):
        if finding.get("path"):
            continue  # offsets index a tool call's argument value, not a stored text
        stage = "input" if scan else (finding.get("stage") or "input")
        by_text.setdefault((stage, finding.get("message_index") or 0), []).append(position)
    for (stage, index), positions in by_text.items():
        text = (inputs[index] if index < len(inputs) else None) if stage == "input" else output
        if not text:
            continue
        shift, last_end = 0, -1
        for position in sorted(positions, key=lambda p: (findings[p]["start"], findings[p]["end"])):
            start, end = findings[position]["start"], findings[position]["end"]
            if start < last_end:
                continue  # overlaps a span already replaced
            placeholder = _PLACEHOLDER.match(text, start + shift)
            if placeholder is not None:
                spans[position] = placeholder.group(0)
                shift += len(placeholder.group(0)) - (end - start)
                last_end = end
    return spans


def explain_findings(record: dict[str, Any], policy: Policy | None) -> list[FindingExplanation]:
    """The explanation of every finding of ``record`` under ``policy`` (the version stamped on it, if stored)."""
    spans = _redacted_spans(record)
    explained = []
    for finding, span in zip(record.get("findings") or [], spans, strict=True):
        stage = finding.get("stage") or "input"
        clause, threshold = _clause_and_threshold(finding, stage, policy)
        explained.append(
            FindingExplanation(
                check=finding["check"],
                type=finding["type"],
                stage=finding.get("stage"),
                message_index=finding.get("message_index"),
                tool_call=finding.get("tool_call"),
                path=finding.get("path"),
                clause=clause,
                rule=finding.get("detail"),
                policy_clause=finding.get("clause"),
                score=finding["score"],
                threshold=threshold if threshold is not None else finding.get("threshold"),
                threshold_source="policy" if threshold is not None else "record",
                action=finding["action"],
                start=finding["start"],
                end=finding["end"],
                redacted_span=span,
            )
        )
    return explained


@dataclass(frozen=True, slots=True)
class Explained:
    findings: list[FindingExplanation]
    linked_id: str | None
    """For stream records: the other record of the same stream."""
    policy_found: bool
    """Whether the stamped policy version is stored (else thresholds are the ones the findings recorded)."""


async def explain_record(engine: AsyncEngine, record: dict[str, Any], policy: Policy | None) -> Explained:
    """The explanation of one record (from :func:`guard.audit.queries.get_decision`) under the policy version stamped
    on it (``None`` when that version is not stored)."""
    return Explained(
        findings=explain_findings(record, policy),
        linked_id=await linked_record_id(engine, record),
        policy_found=policy is not None,
    )
