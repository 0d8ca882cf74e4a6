"""Two real `guard serve` replicas on different ports sharing one PostgreSQL database: under concurrent load every
acknowledged decision has its row, `guard audit verify` passes over both chains, and a key's rate limit holds across
both replicas. The database is created for the test on the server named by GUARD_TEST_POSTGRES_URL and dropped after.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

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
