"""Response bodies of the reviewer API (``/v1/audit``), as msgspec Structs so the OpenAPI schema documents them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from guard.audit.explain import FindingExplanation
from guard.audit.stats import AuditStats, CategoryCount, DecisionCount

__all__ = [
    "AuditDecision",
    "AuditDecisionDetail",
    "AuditPage",
    "AuditStats",
    "CategoryCount",
    "DecisionCount",
    "FindingExplanation",
]


class AuditDecision(msgspec.Struct, kw_only=True):
    """One audit record: redacted text and metadata only (see ``guard.audit.models.DecisionRow``)."""

    decision_id: str
    created_at: datetime
    key_id: str | None
    tenant: str | None
    route: str
    kind: str
    """``request``, or ``stream_open`` / ``stream_close`` (the two records of a stream)."""
    parent_id: str | None
    outcome: str
    http_status: int
    policy_name: str | None
    policy_version: str | None
    policy_sha256: str | None
    shadow: dict[str, Any] | None
    engine: str | None
    model: str | None
    model_revision: str | None
    decision: str
    findings: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    input_redacted: list[dict[str, Any]]
    output_redacted: str | None
    coverage: float | None
    tokens_in: int | None
    tokens_out: int | None
    latency_ms: dict[str, float]
    subject_hmacs: list[str]
    prompt_hmac: str | None
    client_ref: str | None
    chain_id: str
    seq: int | None
    prev_hash: str
    row_hash: str
    content_digest: str | None
    erased_at: datetime | None


class AuditPage(msgspec.Struct):
    items: list[AuditDecision]
    next_cursor: str | None
    """Pass back as ``cursor`` for the next (older) page; ``null`` at the end."""


class AuditDecisionDetail(AuditDecision, kw_only=True):
    """A record with why it was decided so."""

    explanation: list[FindingExplanation]
    """One entry per finding, in the record's order."""
    linked_id: str | None = None
    """For stream records: the other record of the same stream (its open or its close)."""
    policy_found: bool = False
    """Whether the stamped policy version was found in ``policy_versions`` (thresholds read from it)."""
