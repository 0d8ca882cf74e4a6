"""Two real `guard serve` replicas on different ports sharing one PostgreSQL database: under concurrent load every
acknowledged decision has its row, `guard audit verify` passes over both chains, a key's rate limit holds across
both replicas, and so do reviewer-page sessions and the per-address sign-in limit (each attempt audited). The
database is created for the test on the server named by GUARD_TEST_POSTGRES_URL and dropped after.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from guard.api.web.session import SESSION_COOKIE
from guard.audit.admin_events import list_admin_events
from tests.e2e.serving import GUARD, Server, start_server
from tests.services import postgres_url

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
def shared_database() -> Iterator[str]:
    base = postgres_url()
    name = f"guard_replicas_{uuid.uuid4().hex[:8]}"
    server_url, _, _ = base.rpartition("/")
    asyncio.run(_admin(base, f"CREATE DATABASE {name}"))
    try:
        yield f"{server_url}/{name}"
    finally:
        asyncio.run(_admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def replicas(guard_home: Path, tmp_path: Path, shared_database: str) -> Iterator[tuple[Server, Server]]:
    started: list[Server] = []
    try:
        for name in ("a", "b"):
            started.append(
                start_server(guard_home, tmp_path, log_name=f"replica-{name}.log", GUARD_DATABASE_URL=shared_database)
            )
        yield started[0], started[1]
    finally:
        for server in started:
            assert server.process is not None
            server.process.terminate()
            assert server.process.wait(timeout=60) == 0, server.log.read_text()


def _rows(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                result = await connection.execute(text("SELECT decision_id FROM audit_decisions"))
                return {row[0] for row in result}
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_two_replicas_share_one_database(replicas: tuple[Server, Server], shared_database: str) -> None:
    first, second = replicas

    def client(index: int) -> list[str]:
        ids = []
        deadline = time.monotonic() + 8
        with httpx.Client(timeout=60) as http:
            while time.monotonic() < deadline:
                server = (first, second)[(index + len(ids)) % 2]
                response = http.post(
                    f"{server.base}/v1/scan",
                    json={"text": f"client {index} says hello to bob@example.com"},
                    headers=server.auth,
                )
                assert response.status_code == 200, response.text
                ids.append(response.json()["decision_id"])
        return ids

    with ThreadPoolExecutor(8) as pool:
        acknowledged = {decision_id for ids in pool.map(client, range(8)) for decision_id in ids}
    assert len(acknowledged) > 20
    assert acknowledged <= _rows(shared_database)  # every acknowledged answer has its row

    env = {**os.environ, "GUARD_DATABASE_URL": shared_database}
    verified = subprocess.run([GUARD, "audit", "verify"], env=env, capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit log verified" in verified.stdout
    chains = asyncio.run(_chain_count(shared_database))
    assert chains == 2  # one per replica

    created = subprocess.run(
        [GUARD, "keys", "create", "--name", "shared", "--scopes", "scan", "--rate", "5/minute"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.split("key:")[1].split()[0]
    if time.time() % 60 > 50:  # stay inside one clock minute
        time.sleep(61 - time.time() % 60)
    statuses = [
        httpx.post(
            f"{server.base}/v1/scan", json={"text": "hi"}, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ).status_code
        for server in (first, second) * 4
    ]
    assert statuses.count(200) == 5, statuses
    assert statuses[5:] == [429, 429, 429]


async def _chain_count(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text("SELECT COUNT(DISTINCT chain_id) FROM audit_decisions"))
            return int(result.scalar_one())
    finally:
        await engine.dispose()


def _reviewer_state(url: str) -> tuple[list[str], list[tuple[str, str | None, dict[str, Any]]], str]:
    """The session table's keys, the reviewer admin events (action, subject, details), and all of both as text (to
    look for key material in)."""

    async def read() -> tuple[list[str], list[tuple[str, str | None, dict[str, Any]]], str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                sessions = (await connection.execute(text("SELECT key, value FROM reviewer_sessions"))).all()
            events = [
                (e.action, e.subject, e.details)
                for e in await list_admin_events(engine)
                if e.action.startswith("reviewer.")
            ]
        finally:
            await engine.dispose()
        return [row[0] for row in sessions], events, repr([tuple(row) for row in sessions]) + repr(events)

    return asyncio.run(read())


def test_reviewer_sessions_and_sign_in_limits_span_replicas(
    replicas: tuple[Server, Server], shared_database: str
) -> None:
    first, second = replicas
    env = {**os.environ, "GUARD_DATABASE_URL": shared_database}
    created = subprocess.run(
        [GUARD, "keys", "create", "--name", "reviewer", "--scopes", "audit:read"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.split("key:")[1].split()[0]

    # Signed in on one replica is signed in on the other; signed out on the other ends it on the first.
    signed = httpx.post(f"{first.base}/audit/session", data={"key": key}, timeout=60)
    assert signed.status_code == 303, signed.text
    cookie = signed.cookies[SESSION_COOKIE]
    jar = {SESSION_COOKIE: cookie}
    for server in (second, first):
        listed = httpx.get(f"{server.base}/audit/api/decisions", cookies=jar, timeout=60)
        assert listed.status_code == 200, listed.text
        assert "audit.js" in httpx.get(f"{server.base}/audit", cookies=jar, timeout=60).text
    stored, _, _ = _reviewer_state(shared_database)
    assert stored == [hashlib.sha256(cookie.encode()).hexdigest()]  # the id itself is never in the database
    out = httpx.post(f"{second.base}/audit/logout", cookies=jar, timeout=60)
    assert out.status_code == 303
    assert httpx.get(f"{first.base}/audit/api/decisions", cookies=jar, timeout=60).status_code == 401
    assert _reviewer_state(shared_database)[0] == []

    # Wrong keys from one address, alternating replicas within one clock minute: five get 401, then 429 with
    # Retry-After, a right key included, and every attempt is an admin event.
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)
    guesses = [f"gk-guess-{n}-{uuid.uuid4().hex}" for n in range(7)]
    answers = [
        httpx.post(f"{server.base}/audit/session", data={"key": guess}, timeout=60)
        for server, guess in zip((first, second) * 4, guesses, strict=False)
    ]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [401] * 5 + [429] * 2, statuses
    limited = answers[5]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    right = httpx.post(f"{second.base}/audit/session", data={"key": key}, timeout=60)
    assert right.status_code == 429
    assert SESSION_COOKIE not in right.cookies

    _, events, dump = _reviewer_state(shared_database)
    outcomes = [(action, details.get("outcome")) for action, _, details in events]
    assert outcomes == [
        ("reviewer.sign_in", "signed_in"),
        ("reviewer.sign_out", None),
        *[("reviewer.sign_in", "wrong_key")] * 5,
        *[("reviewer.sign_in", "rate_limited")] * 3,
    ]
    assert len({details["address_hmac"] for _, _, details in events}) == 1  # one address, counted on both replicas
    for secret in (key, cookie, *guesses, "127.0.0.1"):
        assert secret not in dump
    verified = subprocess.run([GUARD, "audit", "verify"], env=env, capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
