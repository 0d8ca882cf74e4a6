"""What the pipeline hands the audit writer: one decision, already redacted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

__all__ = ["AuditRecord"]


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The content of one decision row (the writer adds ``chain_id``, ``prev_hash`` and ``row_hash``)."""

    decision_id: str
    created_at: datetime
    route: str
    outcome: str
    http_status: int
    decision: str
    kind: str = "request"
    parent_id: str | None = None
    key_id: str | None = None
    tenant: str | None = None
    policy_name: str | None = None
    policy_version: str | None = None
    policy_sha256: str | None = None
    shadow: dict[str, Any] | None = None
    engine: str | None = None
    model: str | None = None
    model_revision: str | None = None
    findings: list[dict[str, Any]] = msgspec.field(default_factory=list)
    scores: list[dict[str, Any]] = msgspec.field(default_factory=list)
    """Every check's raw scores per text (e.g. all toxicity labels), crossed threshold or not."""
    input_redacted: list[dict[str, Any]] = msgspec.field(default_factory=list)
    output_redacted: str | None = None
    coverage: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: dict[str, float] = msgspec.field(default_factory=dict)
    subject_hmacs: list[str] = msgspec.field(default_factory=list)
    prompt_hmac: str | None = None
    """Keyed digest of the last user message (or the scanned input) as sent: the same prompt elsewhere has the same."""
    client_ref: str | None = None
    """The calling gateway's own id for the call (LiteLLM's ``litellm_call_id``), to join its logs with guard's."""
