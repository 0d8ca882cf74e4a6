"""Every audit record the pipeline writes is built here, and written one of two explicit ways.

:meth:`AuditLog.commit` is strict: an answer is sent only after its record is committed (no audit, no answer), so
a failed commit becomes :class:`ServiceUnavailable`. :meth:`AuditLog.write_best_effort` is for requests that end in
an error anyway (refused, failed, abandoned): the error goes out whether or not the record commits.

Every record is built by :func:`_record`, which stamps the time and takes out what the policy's ``audit:`` options
say not to keep (text, raw scores).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from guard.audit import AuditRecord, AuditUnavailable, AuditWriter
from guard.checks import Finding, Stage
from guard.pipeline.errors import ServiceUnavailable
from guard.pipeline.stage import Checked, Shadow
from guard.pipeline.turn import Caller, ChatOutcome, Turn, elapsed_ms
from guard.policy import LoadedPolicy, strongest
from guard.policy.schema import AuditOptions

__all__ = [
    "NOT_STORED",
    "TEXT_NOT_KEPT",
    "AuditLog",
    "abandoned_record",
    "bare_record",
    "closing_record",
    "opening_record",
    "refusal_record",
    "scan_record",
    "shadow_field",
]

logger = logging.getLogger(__name__)

NOT_STORED = "[not stored: the policy has no PII check for this stage]"
TEXT_NOT_KEPT = "(not stored: the policy's audit.store_text is false)"


class AuditLog:
    """The audit writer with the two ways of writing made explicit."""

    def __init__(self, writer: AuditWriter) -> None:
        self.writer = writer

    async def commit(self, record: AuditRecord) -> None:
        """Commit the record that answers a request; raises :class:`ServiceUnavailable` if it cannot be."""
        try:
            await self.writer.write(record)
        except AuditUnavailable as exc:
            logger.error("audit unavailable: %s", exc)
            raise ServiceUnavailable("the audit log is unavailable") from None

    async def write_best_effort(self, record: AuditRecord) -> None:
        """For requests that fail or are abandoned: the answer (an error) goes out whether or not this commits."""
        try:
            await self.writer.write(record)
        except AuditUnavailable:
            logger.error("audit unavailable while recording a %s %s", record.outcome, record.http_status)

    async def failed(self, turn: Turn) -> None:
        """Record that ``turn`` failed closed (the 503 is sent either way)."""
        await self.write_best_effort(refusal_record(turn, outcome="error", status=503))


def _record(policy: LoadedPolicy | None, **fields: Any) -> AuditRecord:
    """A record stamped now, with what ``policy``'s ``audit:`` options say not to keep taken out."""
    record = AuditRecord(created_at=datetime.now(UTC), **fields)
    return record if policy is None else _as_policy_keeps(record, policy.policy.audit)


def _as_policy_keeps(record: AuditRecord, options: AuditOptions) -> AuditRecord:
    """``record`` with what the policy's ``audit:`` options say not to keep taken out (text, raw scores)."""
    changes: dict[str, Any] = {}
    if not options.store_text:
        changes["input_redacted"] = [{**message, "content": TEXT_NOT_KEPT} for message in record.input_redacted]
        changes["output_redacted"] = None if record.output_redacted is None else TEXT_NOT_KEPT
    if not options.store_scores:
        changes["scores"] = []
    return msgspec.structs.replace(record, **changes) if changes else record


def shadow_field(shadow: Shadow | None, active_decision: str) -> dict[str, Any] | None:
    """The record's ``shadow`` field: what the candidate would have decided, beside the active decision."""
    if shadow is None:
        return None
    decision = strongest([f.action for f in shadow.findings])
    field: dict[str, Any] = {
        "name": shadow.policy.name,
        "version": shadow.policy.version,
        "sha256": shadow.policy.sha256,
        "decision": decision,
        "findings": [{"check": f.check, "type": f.type, "action": f.action, "stage": f.stage} for f in shadow.findings],
        "agree": decision == active_decision and shadow.error is None,
    }
    if shadow.error is not None:
        field["error"] = shadow.error
    return field


def _findings(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(f) for f in findings]


def _turn_record(turn: Turn, findings: Sequence[Finding], **fields: Any) -> AuditRecord:
    """A record of ``turn``: its input-stage fields, ``findings`` and the latency so far, plus ``fields``."""
    return _record(
        turn.policy,
        **turn.record,
        findings=_findings(findings),
        scores=list(turn.scores),
        latency_ms=dict(turn.latency),
        shadow=shadow_field(turn.shadow, fields.get("decision", turn.decision)),
        **fields,
    )


def opening_record(turn: Turn) -> AuditRecord:
    """A stream's opening record: the input side and the decision so far, committed before the first chunk."""
    turn.latency["opened"] = elapsed_ms(turn.started)
    return _turn_record(
        turn,
        turn.findings,
        decision_id=turn.decision_id,
        kind="stream_open",
        outcome="ok",
        http_status=200,
        decision=turn.decision,
        tokens_in=turn.tokens_in,
        subject_hmacs=sorted(turn.subjects),
    )


def closing_record(turn: Turn, outcome: ChatOutcome) -> AuditRecord:
    """The record that answers the turn: the request's only record, or a stream's closing record."""
    turn.latency["total"] = elapsed_ms(turn.started)
    return _turn_record(
        turn,
        outcome.findings,
        **turn.identity(),
        outcome="ok",
        http_status=200,
        decision=outcome.decision,
        output_redacted=turn.output_audit,
        coverage=turn.coverage,
        tokens_in=outcome.tokens_in,
        tokens_out=outcome.tokens_out,
        subject_hmacs=sorted(turn.subjects),
    )


def refusal_record(turn: Turn, *, outcome: str, status: int) -> AuditRecord:
    """A turn refused before generation (``rejected``, e.g. 429) or failed closed (``error``, 503)."""
    turn.latency["total"] = elapsed_ms(turn.started)
    return _turn_record(turn, turn.findings, **turn.identity(), outcome=outcome, http_status=status, decision="block")


def abandoned_record(turn: Turn, *, stalled: bool = False) -> AuditRecord:
    """A stream whose client went away: a 499 close (outcome ``client_stalled`` when the server cut a client that
    had stopped reading)."""
    turn.latency["total"] = elapsed_ms(turn.started)
    return _turn_record(
        turn,
        turn.findings,
        **turn.identity(),
        outcome="client_stalled" if stalled else "error",
        http_status=499,
        decision=turn.decision,
        coverage=0.0,
    )


def bare_record(
    route: str,
    caller: Caller,
    outcome: str,
    status: int,
    *,
    decision_id: str | None = None,
    policy: LoadedPolicy | None = None,
    latency_ms: dict[str, float] | None = None,
    client_ref: str | None = None,
) -> AuditRecord:
    """The record of a request refused or failed with no turn to describe it (nothing of its text is kept)."""
    return _record(
        policy,
        decision_id=decision_id or str(uuid.uuid4()),
        route=route,
        outcome=outcome,
        http_status=status,
        decision="block",
        key_id=caller.key_id,
        tenant=caller.tenant,
        policy_name=policy.name if policy else None,
        policy_version=policy.version if policy else None,
        policy_sha256=policy.sha256 if policy else None,
        latency_ms=latency_ms or {},
        client_ref=client_ref,
    )


def scan_record(
    decision_id: str,
    caller: Caller,
    policy: LoadedPolicy,
    stage: Stage,
    checked: Checked,
    shadow: Shadow | None,
    *,
    prompt_hmac: str | None,
    started: float,
    route: str = "/v1/scan",
    roles: list[str] | None = None,
    client_ref: str | None = None,
) -> AuditRecord:
    """A scan's record (one text, or a gateway's several texts of one call): each text's stored form (or the
    not-stored marker) under its role (else the stage), the findings and scores."""
    decision = strongest([f.action for f in checked.findings])
    stored = [text if text is not None else NOT_STORED for text in checked.audit_texts]
    return _record(
        policy,
        decision_id=decision_id,
        route=route,
        outcome="ok",
        http_status=200,
        decision=decision,
        key_id=caller.key_id,
        tenant=caller.tenant,
        policy_name=policy.name,
        policy_version=policy.version,
        policy_sha256=policy.sha256,
        shadow=shadow_field(shadow, decision),
        findings=_findings(checked.findings),
        scores=checked.scores,
        input_redacted=[
            {"role": roles[index] if roles else stage, "content": text} for index, text in enumerate(stored)
        ],
        latency_ms={"checks": elapsed_ms(started), "total": elapsed_ms(started)},
        subject_hmacs=sorted(checked.subjects),
        prompt_hmac=prompt_hmac,
        coverage=1.0,
        client_ref=client_ref,
    )
