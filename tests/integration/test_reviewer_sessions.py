"""The database-backed reviewer-session store on SQLite and PostgreSQL: two stores on one database (two replicas)
share sessions, the table holds only session-id digests, rows expire and are pruned, and an unreachable database
fails closed (503) instead of reading as signed out."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from litestar.exceptions import ServiceUnavailableException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from guard.api.web.session import SESSION
from guard.store.models import ReviewerSessionRow
from guard.store.sessions import SESSION_NAMESPACE, ReviewerSessionStore, session_key

pytestmark = pytest.mark.integration


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines on one database, as two replicas hold."""
    first, second = create_async_engine(database_url), create_async_engine(database_url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def _rows(engine: AsyncEngine) -> list[tuple[str, str, bytes]]:
    query = select(ReviewerSessionRow.namespace, ReviewerSessionRow.key, ReviewerSessionRow.value)
    async with engine.connect() as connection:
        return [(row[0], row[1], bytes(row[2])) for row in await connection.execute(query)]


async def test_two_stores_on_one_database_share_sessions(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    first, second = ReviewerSessionStore(engines[0]), ReviewerSessionStore(engines[1])
    session_id = secrets.token_hex(32)
    data = b'{"key_id":"abc123","tenant":null,"scopes":["audit:read"]}'

    await first.set(session_id, data, expires_in=3600)
    assert await second.get(session_id) == data
    assert await second.exists(session_id)
    remaining = await second.expires_in(session_id)
    assert remaining is not None
    assert 3590 <= remaining <= 3600

    # What a database reader sees: the digest of the id, never the id (a row cannot be replayed as a cookie).
    rows = await _rows(engines[0])
    assert rows == [(SESSION_NAMESPACE, session_key(session_id), data)]
    assert all(session_id not in key for _, key, _ in rows)
    assert await first.get(session_key(session_id)) is None  # the stored digest is not itself a session id

    await first.set(session_id, b'{"key_id":"abc123"}', expires_in=3600)  # a rewrite replaces, never duplicates
    assert await second.get(session_id) == b'{"key_id":"abc123"}'
    assert await first.count() == 1

    await second.delete(session_id)  # signing out on one replica ends the session on the other
    assert await first.get(session_id) is None
    assert not await first.exists(session_id)
    assert await first.count() == 0


async def test_sessions_expire_and_are_pruned(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    store = ReviewerSessionStore(engines[0], prune_every_s=3600)
    short, long = secrets.token_hex(32), secrets.token_hex(32)
    await store.set(short, b"short", expires_in=1)
    await store.set(long, b"long", expires_in=3600)
    await asyncio.sleep(1.5)

    assert await store.get(short) is None  # expired: read as absent at once
    assert await store.expires_in(short) is None
    assert await store.get(long) == b"long"
    assert await store.count() == 2  # still on disk until pruned
    assert await store.prune() == 1
    assert await store.count() == 1
    assert [key for _, key, _ in await _rows(engines[0])] == [session_key(long)]

    # Pruning also runs from set() once per interval, on whichever replica writes first.
    eager = ReviewerSessionStore(engines[1], prune_every_s=0)
    await eager.set(short, b"short", expires_in=1)
    await asyncio.sleep(1.5)
    await eager.set(secrets.token_hex(32), b"new", expires_in=60)
    assert await eager.get(short) is None
    assert await eager.count() == 2  # the expired row is gone, the live and the new one remain


async def test_namespaces_are_separate(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    store = ReviewerSessionStore(engines[0])
    other = store.with_namespace("other")
    session_id = secrets.token_hex(32)
    await store.set(session_id, b"here", expires_in=60)
    assert await other.get(session_id) is None
    await other.set(session_id, b"there", expires_in=60)
    assert await store.get(session_id) == b"here"
    await other.delete_all()
    assert await store.get(session_id) == b"here"


async def test_an_unreachable_database_fails_closed() -> None:
    # A real engine on a port nothing listens on: the session backend answers 503, never "no session".
    engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nothing", connect_args={"timeout": 2})
    backend = SESSION._backend_class(config=SESSION)
    store = ReviewerSessionStore(engine)
    try:
        with pytest.raises(ServiceUnavailableException):
            await backend.get(secrets.token_hex(32), store)
        with pytest.raises(ServiceUnavailableException):
            await backend.set(secrets.token_hex(32), b"{}", store)
        with pytest.raises(ServiceUnavailableException):
            await backend.delete(secrets.token_hex(32), store)
    finally:
        await engine.dispose()
