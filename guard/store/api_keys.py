"""Scoped API keys: create (the key is shown once), look up by digest, list and revoke.

Only ``sha256(key)`` is stored. A key is 32 random bytes, so a plain sha256 suffices: slow KDFs (bcrypt, argon2)
exist to protect guessable passwords, and nobody can brute-force a 256-bit random secret from its digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guard.audit.admin_events import process_actor, record_admin_event
from guard.errors import GuardError
from guard.store.models import ApiKeyRow
from guard.store.rate_limits import parse_rate

__all__ = [
    "KEY_PREFIX",
    "SCOPES",
    "ApiKey",
    "InvalidApiKeySpec",
    "create_api_key",
    "find_api_key",
    "is_live_key",
    "key_digest",
    "list_api_keys",
    "revoke_api_key",
]

KEY_PREFIX = "gk-"
SCOPES = ("generate", "scan", "audit:read", "policy:admin")
_ATTEMPTS = 3


class InvalidApiKeySpec(GuardError, ValueError):
    """The requested key's scopes, rate or name are not valid."""


@dataclass(frozen=True)
class ApiKey:
    """A key's public record (never the key itself)."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    policy: str | None = None
    allowed_policies: tuple[str, ...] = field(default=())
    rate: str | None = None
    tenant: str | None = None
    created_at: datetime | None = None
    revoked_at: datetime | None = None


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _record(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        scopes=tuple(row.scopes),
        policy=row.policy,
        allowed_policies=tuple(row.allowed_policies or ()),
        rate=row.rate,
        tenant=row.tenant,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _validate(name: str, scopes: Sequence[str], rate: str | None) -> None:
    if not name.strip():
        raise InvalidApiKeySpec("a key needs a name")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidApiKeySpec(f"scopes must be one or more of {', '.join(SCOPES)}; unknown: {', '.join(unknown)}")
    if rate is not None:
        try:
            parse_rate(rate)
        except ValueError as exc:
            raise InvalidApiKeySpec(f"invalid rate: {exc}") from None


async def create_api_key(
    engine: AsyncEngine,
    *,
    name: str,
    scopes: Sequence[str],
    policy: str | None = None,
    allowed_policies: Sequence[str] = (),
    rate: str | None = None,
    tenant: str | None = None,
    actor: str | None = None,
) -> tuple[str, ApiKey]:
    """Store a new key and its ``key.create`` admin event; returns ``(key, record)``. The key cannot be recovered
    later: show it once. ``actor`` defaults to the operating-system user running this process."""
    _validate(name, scopes, rate)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        key_id=secrets.token_hex(8),
        name=name,
        scopes=tuple(dict.fromkeys(scopes)),
        policy=policy,
        allowed_policies=tuple(dict.fromkeys(allowed_policies)),
        rate=rate,
        tenant=tenant,
        created_at=datetime.now(UTC),
    )

    async def store(connection: AsyncConnection) -> None:
        await connection.execute(
            insert(ApiKeyRow).values(
                key_id=record.key_id,
                key_digest=key_digest(key),
                name=record.name,
                scopes=list(record.scopes),
                policy=record.policy,
                allowed_policies=list(record.allowed_policies),
                rate=record.rate,
                tenant=record.tenant,
                created_at=record.created_at,
            )
        )
        details = {
            "name": record.name,
            "scopes": list(record.scopes),
            "policy": record.policy,
            "allowed_policies": list(record.allowed_policies),
            "rate": record.rate,
            "tenant": record.tenant,
        }
        await record_admin_event(
            connection, actor=actor or process_actor(), action="key.create", subject=record.key_id, details=details
        )

    await _with_event(engine, store)
    return key, record


async def find_api_key(engine: AsyncEngine, key: str) -> ApiKey | None:
    """The live (not revoked) key whose digest matches ``key``, else None."""
    digest = key_digest(key)
    async with engine.connect() as connection:
        row = (await connection.execute(select(ApiKeyRow).where(ApiKeyRow.key_digest == digest))).one_or_none()
    if row is None:
        return None
    stored = ApiKeyRow(**row._mapping)  # a Core select of the mapped table yields plain column rows
    # The index lookup found it; compare again in constant time so the match itself never depends on timing.
    if not hmac.compare_digest(stored.key_digest, digest) or stored.revoked_at is not None:
        return None
    return _record(stored)


async def is_live_key(engine: AsyncEngine, key_id: str) -> bool:
    """Whether a key with this id exists and is not revoked (for sessions that outlive the request with the key)."""
    query = select(ApiKeyRow.key_id).where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
    async with engine.connect() as connection:
        return (await connection.execute(query)).one_or_none() is not None


async def list_api_keys(engine: AsyncEngine) -> list[ApiKey]:
    async with engine.connect() as connection:
        result = await connection.execute(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.key_id))
        return [_record(ApiKeyRow(**row._mapping)) for row in result]


async def revoke_api_key(engine: AsyncEngine, key_id: str, *, actor: str | None = None) -> bool:
    """Revoke a live key and record a ``key.revoke`` admin event; False when no live key has that id."""
    revoked = False

    async def store(connection: AsyncConnection) -> None:
        nonlocal revoked
        result = await connection.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        revoked = bool(result.rowcount)
        if revoked:
            await record_admin_event(
                connection, actor=actor or process_actor(), action="key.revoke", subject=key_id, details={}
            )

    await _with_event(engine, store)
    return revoked


async def _with_event(engine: AsyncEngine, change: Callable[[AsyncConnection], Awaitable[None]]) -> None:
    """Run ``change`` (a key change and its admin event) in one transaction; retry when another writer took the
    chain head first (unique ``prev_hash``) or held SQLite's write lock."""
    for attempt in range(_ATTEMPTS):
        try:
            async with engine.begin() as connection:
                await change(connection)
            return
        except (IntegrityError, OperationalError):
            if attempt == _ATTEMPTS - 1:
                raise
