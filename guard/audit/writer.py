"""Writes decision rows and commits each before its response may be sent (no audit, no answer).

Rows are chained: ``row_hash = sha256(prev_hash || canonical row)``, one chain per writer instance, so that
replicas sharing a database each keep their own. Text is cleaned of NUL characters and lone surrogates,
which PostgreSQL rejects. (Group commit comes with the audit issue.)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from typing import Any

import msgspec
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from guard.audit.models import DecisionRow
from guard.audit.record import AuditRecord

__all__ = ["GENESIS_HASH", "AuditUnavailable", "AuditWriter", "clean", "row_hash"]

GENESIS_HASH = "0" * 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class AuditUnavailable(RuntimeError):
    """The decision could not be committed; the request must not be answered."""


def clean(value: Any) -> Any:
    """Replace characters no database may store (NUL, lone surrogates) with U+FFFD, recursively."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [clean(item) for item in value]
    if isinstance(value, dict):
        return {clean(key): clean(item) for key, item in value.items()}
    return value


def row_hash(prev_hash: str, content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(prev_hash.encode("ascii") + canonical.encode("utf-8")).hexdigest()


class AuditWriter:
    def __init__(self, engine: AsyncEngine, *, chain_id: str | None = None) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.chain_id = chain_id or str(uuid.uuid4())
        self._head = GENESIS_HASH
        self._lock = asyncio.Lock()

    async def write(self, record: AuditRecord) -> None:
        """Commit ``record``; raise :class:`AuditUnavailable` if the database does not take it."""
        content = clean(msgspec.to_builtins(record))
        content["created_at"] = record.created_at
        async with self._lock:
            digest = row_hash(self._head, {**content, "created_at": record.created_at.isoformat()})
            row = DecisionRow(**content, chain_id=self.chain_id, prev_hash=self._head, row_hash=digest)
            try:
                async with self._sessions() as session:
                    session.add(row)
                    await session.commit()
            except (SQLAlchemyError, OSError) as exc:
                raise AuditUnavailable(f"audit commit failed ({type(exc).__name__})") from None
            self._head = digest
