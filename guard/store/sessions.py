"""Reviewer-page sessions in the database, so every replica on it sees the same sign-ins.

advanced-alchemy's :class:`SQLAlchemyStore` (a Litestar ``Store``: upsert on set, expiry filtered on read) over the
``reviewer_sessions`` table, with two additions: the session id is stored as its sha256, so someone reading the
table cannot present a row's key as a cookie; and rows past their expiry are deleted now and then (the library only
skips them). Sign-out deletes the row; a revoked key's sessions end at their next request (the page checks the key).
"""

from __future__ import annotations

import datetime
import hashlib
import time
from typing import Any, cast

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from advanced_alchemy.extensions.litestar.store import SQLAlchemyStore
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.store.models import ReviewerSessionRow

__all__ = ["SESSION_NAMESPACE", "ReviewerSessionStore", "session_key"]

SESSION_NAMESPACE = "audit_sessions"


def session_key(session_id: str) -> str:
    """What the table holds for a session id: its sha256 (the id is 32 random bytes, so a plain digest suffices)."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class ReviewerSessionStore(SQLAlchemyStore[SQLAlchemyAsyncConfig]):
    """The ``audit_sessions`` store: rows keyed by the session id's digest; expired rows pruned at most every
    ``prune_every_s`` seconds, by whichever replica writes a session first after that."""

    def __init__(
        self, engine: AsyncEngine, *, namespace: str = SESSION_NAMESPACE, prune_every_s: float = 300.0
    ) -> None:
        # The model duck-types advanced-alchemy's StoreModelMixin (same columns) on guard's own metadata, so the
        # table is in guard's Alembic history; the composite primary key is the upsert's conflict target.
        config = SQLAlchemyAsyncConfig(engine_instance=engine)
        super().__init__(config, model=cast("Any", ReviewerSessionRow), namespace=namespace)
        self._engine_ref = engine
        self._prune_every_s = prune_every_s
        self._next_prune = time.monotonic()

    async def set(self, key: str, value: str | bytes, expires_in: int | datetime.timedelta | None = None) -> None:
        await super().set(session_key(key), value, expires_in)
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self._prune_every_s
            await self.prune()

    async def get(self, key: str, renew_for: int | datetime.timedelta | None = None) -> bytes | None:
        return await super().get(session_key(key), renew_for)

    async def delete(self, key: str) -> None:
        await super().delete(session_key(key))

    async def exists(self, key: str) -> bool:
        return await super().exists(session_key(key))

    async def expires_in(self, key: str) -> int | None:
        return await super().expires_in(session_key(key))

    def with_namespace(self, namespace: str) -> ReviewerSessionStore:
        nested = f"{self.namespace}_{namespace}"
        return type(self)(self._engine_ref, namespace=nested, prune_every_s=self._prune_every_s)

    async def prune(self) -> int:
        """Delete this namespace's expired rows; returns how many."""
        rows = ReviewerSessionRow
        now = datetime.datetime.now(datetime.UTC)
        statement = delete(rows).where(rows.namespace == self.namespace, rows.expires_at < now)
        async with self._engine_ref.begin() as connection:
            return int((await connection.execute(statement)).rowcount)

    async def count(self) -> int:
        """Rows in this namespace, expired ones included (for tests and operators)."""
        query = (
            select(func.count()).select_from(ReviewerSessionRow).where(ReviewerSessionRow.namespace == self.namespace)
        )
        async with self._engine_ref.connect() as connection:
            return int((await connection.execute(query)).scalar_one())
