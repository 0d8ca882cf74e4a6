"""The store's tables: API keys, policy versions, rate-limit windows and reviewer sessions.

They are declared on the audit's :class:`~guard.audit.models.Base`, so ``Base.metadata`` (re-exported here) holds
every guard table once this module is imported: Alembic's ``env.py`` and the schema test import it from here.
"""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guard.audit.models import Base, JsonB

__all__ = ["ApiKeyRow", "Base", "PolicyVersionRow", "RateLimitWindowRow", "ReviewerSessionRow"]


class PolicyVersionRow(Base):
    """One distinct policy version ever loaded, with the exact YAML text behind its sha256 stamp."""

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    first_seen_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), nullable=False)

    __table_args__ = (
        UniqueConstraint("name", "version", "sha256", name="uq_policy_versions_stamp"),
        Index("ix_policy_versions_name_sha256", "name", "sha256"),
    )


class ApiKeyRow(Base):
    """One scoped API key: only the sha256 digest of the key is stored, never the key itself."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JsonB, nullable=False)
    policy: Mapped[str | None] = mapped_column(String(64))
    allowed_policies: Mapped[list[str]] = mapped_column(JsonB, nullable=False, default=list)
    rate: Mapped[str | None] = mapped_column(String(32))
    tenant: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    __table_args__ = (UniqueConstraint("key_digest", name="uq_api_keys_key_digest"),)


class RateLimitWindowRow(Base):
    """Requests counted per key and fixed window, in the database so every replica shares the count."""

    __tablename__ = "rate_limit_windows"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    """The window's start in epoch seconds (a multiple of the window length)."""
    count: Mapped[int] = mapped_column(Integer, nullable=False)


class ReviewerSessionRow(Base):
    """One reviewer-page session, shared by every replica. The columns are the ones advanced-alchemy's
    ``SQLAlchemyStore`` reads and writes; ``key`` is the sha256 of the cookie's session id, never the id itself."""

    __tablename__ = "reviewer_sessions"

    namespace: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    """The session data (key id, tenant, scopes; never the key)."""
    expires_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), index=True)
