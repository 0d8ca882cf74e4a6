"""The audit tables and the declarative ``Base`` whose metadata holds every guard table (the store's tables,
:mod:`guard.store.models`, are declared on it too, so one Alembic history covers the database).

Every column holds redacted text or metadata: never a raw prompt, never raw PII."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["AdminEventRow", "Base", "DecisionRow", "JsonB"]

# JSONB on PostgreSQL (indexable), JSON elsewhere. (advanced-alchemy 1.12's JsonB fails on SQLAlchemy 2.1.)
JsonB = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class DecisionRow(Base):
    """One decision: what was asked (redacted), what the policy decided and why, chained by hash."""

    __tablename__ = "audit_decisions"

    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), nullable=False)
    key_id: Mapped[str | None] = mapped_column(String(64))
    tenant: Mapped[str | None] = mapped_column(String(128))
    route: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="request", server_default="request")
    """``request`` (one record answers it), or ``stream_open`` / ``stream_close`` (the two records of a stream)."""
    parent_id: Mapped[str | None] = mapped_column(String(36))
    """For ``stream_close``: the ``decision_id`` of its ``stream_open`` record."""
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    http_status: Mapped[int] = mapped_column(Integer, nullable=False)
    policy_name: Mapped[str | None] = mapped_column(String(64))
    policy_version: Mapped[str | None] = mapped_column(String(64))
    policy_sha256: Mapped[str | None] = mapped_column(String(64))
    shadow: Mapped[dict[str, Any] | None] = mapped_column(JsonB)
    engine: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(256))
    model_revision: Mapped[str | None] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16), nullable=False)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JsonB, nullable=False)
    scores: Mapped[list[dict[str, Any]]] = mapped_column(JsonB, nullable=False, default=list)
    """Each check's raw scores per text: ``{"stage", "check", "message_index"?, "scores": {name: value}}``."""
    input_redacted: Mapped[list[dict[str, Any]]] = mapped_column(JsonB, nullable=False)
    output_redacted: Mapped[str | None] = mapped_column(Text)
    coverage: Mapped[float | None] = mapped_column(Float)
    tokens_in: Mapped[int | None] = mapped_column(Integer)
    tokens_out: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[dict[str, float]] = mapped_column(JsonB, nullable=False)
    subject_hmacs: Mapped[list[str]] = mapped_column(JsonB, nullable=False)
    prompt_hmac: Mapped[str | None] = mapped_column(String(64))
    client_ref: Mapped[str | None] = mapped_column(String(128))
    """The calling gateway's own id for the call (LiteLLM's ``litellm_call_id``)."""
    """Keyed digest of the last user message as sent (HMAC key outside the DB): finds the same prompt elsewhere."""
    chain_id: Mapped[str] = mapped_column(String(36), nullable=False)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    """The row's position in its chain (1, 2, ...); NULL for rows written before chain v2."""
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    row_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    content_digest: Mapped[str | None] = mapped_column(String(64))
    """sha256 of the content fields; the row hash covers this digest, so erasing content keeps the chain valid."""
    erased_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    """When a data-subject erasure blanked this row's content fields."""

    __table_args__ = (
        Index("ix_audit_decisions_created_at", "created_at", "decision_id"),
        Index("ix_audit_decisions_decision", "decision", "created_at"),
        Index("ix_audit_decisions_policy", "policy_name", "policy_version"),
        Index("ix_audit_decisions_key_id", "key_id", "created_at"),
        Index("ix_audit_decisions_parent_id", "parent_id"),
        Index("ux_audit_decisions_chain_seq", "chain_id", "seq", unique=True),
        Index("ix_audit_decisions_tenant", "tenant", "created_at"),
        Index("ix_audit_decisions_prompt_hmac", "prompt_hmac"),
        Index("ix_audit_decisions_client_ref", "client_ref"),
    )


class AdminEventRow(Base):
    """One administrative change (a key created or revoked), hash-chained: ``row_hash = sha256(prev_hash || row)``.

    The chain is a single line (``prev_hash`` is unique), so a fork from two concurrent writers fails one insert."""

    __tablename__ = "admin_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    subject: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JsonB, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    row_hash: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (UniqueConstraint("prev_hash", name="uq_admin_events_prev_hash"),)
