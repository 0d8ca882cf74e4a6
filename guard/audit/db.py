"""The audit database engine: SQLite (WAL, synchronous=FULL) by default, PostgreSQL through asyncpg."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["create_engine", "ping", "snapshot"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # A decision is answered only once its row is durable: WAL with a full fsync on every commit.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers and the audit table exists (i.e. migrations ran)."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1 FROM audit_decisions WHERE 1 = 0"))


@asynccontextmanager
async def snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose reads all see one snapshot of the database, rolled back at the end (it only reads)."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            async with connection.begin():
                yield connection
        return
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # pysqlite opens no transaction for a SELECT (each sees the newest commit); an explicit BEGIN holds
            # the WAL snapshot of the first read until the rollback that returning the connection does.
            await connection.execute(text("BEGIN"))
        yield connection
