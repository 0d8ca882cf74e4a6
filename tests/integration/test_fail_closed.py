"""Fault injection on the real app: a check that raises or hangs, an engine step that fails (OOM), a request past
its timeout, a database that goes away. Each must give 503 + Retry-After (audited where a database is there to
take the row), turn /readyz not-ready, and recover on its own once the fault is gone."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

import guard.pipeline.health
from guard.app import create_app
from guard.audit.migrate import upgrade
from guard.checks import CheckItem, CheckRegistry, CheckResult
from guard.checks.base import Check
from guard.models import Models
from tests.integration.conftest import AUTH, dev_settings
from tests.integration.dbdump import audit_rows
from tests.services import postgres_url

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
BODY = {"model": "default", "messages": [{"role": "user", "content": "Tell me about libraries."}], "max_tokens": 8}
STREAM = {**BODY, "stream": True}
COMPLETION = {"model": "default", "prompt": "Tell me about libraries.", "max_tokens": 8}
SCAN = {"text": "Tell me about libraries.", "stage": "input"}
CHECK_TIMEOUT_S = 1.5


class FaultyCheck:
    """Test-only wrapper around a real check: passes through, raises, or hangs until released."""

    def __init__(self, inner: Check) -> None:
        self.inner = inner
        self.name = inner.name
        self.mode: str | None = None
        self.release = threading.Event()

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        if self.mode == "raise":
            raise RuntimeError("injected check fault")
        if self.mode == "hang":
            self.release.wait(30)  # holds the check's worker thread, as a stuck model call would
        return self.inner.run(items)

    def __getattr__(self, name: str) -> Any:  # e.g. prohibited_use.validate on policy reload
        return getattr(self.inner, name)


class FaultyDecoder:
    """Test-only wrapper around the engine's real decoder forward (the lean Gemma-2 forward where the engine runs
    it, else transformers' decoder): raises CUDA-style OOM, or is slow, when armed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.oom = False
        self.delay_s = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.oom:
            raise torch.OutOfMemoryError("injected: CUDA out of memory")
        time.sleep(self.delay_s)
        return self.inner(*args, **kwargs)


@pytest.fixture
def faulty(models: Models) -> Iterator[tuple[Models, dict[str, FaultyCheck]]]:
    wrapped = {name: FaultyCheck(check) for name, check in models.checks.items()}
    registry = CheckRegistry(list(wrapped.values()), models.checks.descriptions)  # type: ignore[arg-type]
    yield replace(models, checks=registry), wrapped
    for check in wrapped.values():  # never leave a worker thread hung behind the test
        check.mode = None
        check.release.set()


@pytest.fixture
def decoder(models: Models, monkeypatch: pytest.MonkeyPatch) -> FaultyDecoder:
    batcher = models.engine._batcher  # type: ignore[attr-defined]
    name = "_lean" if batcher._lean is not None else "_decoder"
    wrapper = FaultyDecoder(getattr(batcher, name))
    monkeypatch.setattr(batcher, name, wrapper)
    return wrapper


@pytest.fixture(autouse=True)
def fresh_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every /readyz probes anew (the 2 s cache would only slow the recovery checks down)."""
    monkeypatch.setattr(guard.pipeline.health, "PROBE_TTL_S", 0.0)


@contextlib.asynccontextmanager
async def serve(
    models: Models, home: Path, url: str, *, request_timeout_s: float = 60.0
) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = dev_settings(home, url)
    api = replace(settings.api, check_timeout_s=CHECK_TIMEOUT_S, request_timeout_s=request_timeout_s)
    async with AsyncTestClient(app=create_app(replace(settings, api=api), models=models)) as client:
        yield client


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'guard.db'}"
    (tmp_path / "db").mkdir()
    upgrade(url)
    return url


def assert_503(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    error = response.json()["error"]
    assert error["code"]
    assert error["type"] == "server_error"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert "libraries" not in response.text  # no raw input in the error


async def refused_everywhere(client: AsyncTestClient[Any]) -> None:
    """Chat, a stream (refused before it starts), a completion and scan all fail closed."""
    assert_503(await client.post(CHAT, json=BODY, headers=AUTH))
    assert_503(await client.post(CHAT, json=STREAM, headers=AUTH))
    assert_503(await client.post("/v1/completions", json=COMPLETION, headers=AUTH))
    assert_503(await client.post("/v1/scan", json=SCAN, headers=AUTH))


async def readiness(client: AsyncTestClient[Any]) -> tuple[int, dict[str, str]]:
    response = await client.get("/readyz")
    return response.status_code, response.json()["checks"]


async def ready_again(client: AsyncTestClient[Any]) -> None:
    """Recovery without a restart: /readyz turns ready by itself, then requests succeed."""
    for _ in range(60):
        if (await readiness(client))[0] == 200:
            break
        await asyncio.sleep(0.25)
    assert (await readiness(client))[0] == 200, await readiness(client)
    assert (await client.post(CHAT, json=BODY, headers=AUTH)).status_code == 200
    assert (await client.post("/v1/scan", json=SCAN, headers=AUTH)).status_code == 200


async def failures(url: str) -> list[dict[str, Any]]:
    return [r for r in await audit_rows(url) if r["outcome"] == "error" and r["http_status"] == 503]


async def test_a_check_that_raises_fails_closed_audited_and_recovers(
    faulty: tuple[Models, dict[str, FaultyCheck]], guard_home: Path, sqlite_url: str
) -> None:
    models, checks = faulty
    async with serve(models, guard_home, sqlite_url) as client:
        assert (await readiness(client))[0] == 200
        checks["pii"].mode = "raise"

        await refused_everywhere(client)
        status, report = await readiness(client)
        assert status == 503
        assert report["check:pii"] == "failed (RuntimeError)"
        assert report["check:injection"] == "ok"
        rows = await failures(sqlite_url)
        assert sorted(r["route"] for r in rows) == [CHAT, CHAT, "/v1/completions", "/v1/scan"]
        assert all(r["decision"] == "block" and r["policy_name"] == "default" for r in rows)

        checks["pii"].mode = None
        await ready_again(client)


async def test_a_check_that_hangs_past_its_timeout_fails_closed_audited_and_recovers(
    faulty: tuple[Models, dict[str, FaultyCheck]], guard_home: Path, sqlite_url: str
) -> None:
    models, checks = faulty
    async with serve(models, guard_home, sqlite_url) as client:
        checks["pii"].mode = "hang"
        started = time.monotonic()
        response = await client.post(CHAT, json=BODY, headers=AUTH)
        assert_503(response)
        assert "timed out" in response.json()["error"]["message"]
        assert time.monotonic() - started < CHECK_TIMEOUT_S + 5
        # The hung call still holds the worker: later requests queue behind it and time out too.
        await refused_everywhere(client)
        status, report = await readiness(client)
        assert status == 503
        assert report["check:pii"].startswith("stuck")
        assert len(await failures(sqlite_url)) == 5

        checks["pii"].mode = None
        checks["pii"].release.set()  # the stuck call returns
        await ready_again(client)


async def test_an_engine_step_that_fails_with_oom_fails_closed_and_recovers(
    models: Models, decoder: FaultyDecoder, guard_home: Path, sqlite_url: str
) -> None:
    async with serve(models, guard_home, sqlite_url) as client:
        decoder.oom = True
        assert_503(await client.post(CHAT, json=BODY, headers=AUTH))
        status, report = await readiness(client)
        assert status == 503
        assert report["engine"].startswith("last step failed (OutOfMemoryError)")
        (row,) = await failures(sqlite_url)
        assert row["route"] == CHAT
        assert models.engine.stats().healthy, "the worker survives the failed step"

        decoder.oom = False
        await ready_again(client)  # the probe's one-token generation clears the failure


async def test_the_request_timeout_answers_503_and_frees_the_engine_slot(
    models: Models, decoder: FaultyDecoder, guard_home: Path, sqlite_url: str
) -> None:
    async with serve(models, guard_home, sqlite_url, request_timeout_s=1.0) as client:
        decoder.delay_s = 1.5  # the first engine step alone outlasts the request's second
        response = await client.post(CHAT, json={**BODY, "max_tokens": 64}, headers=AUTH)
        assert_503(response)
        assert response.json()["error"]["message"] == "the request timed out"
        (row,) = await failures(sqlite_url)
        assert row["route"] == CHAT
        for _ in range(100):
            if not models.engine.stats().running:
                break
            await asyncio.sleep(0.1)
        assert models.engine.stats().running == 0, "the cancelled sequence left its slot"

        decoder.delay_s = 0.0
        await ready_again(client)


async def test_sqlite_going_away_gives_no_200_and_recovers(models: Models, guard_home: Path, sqlite_url: str) -> None:
    folder = Path(sqlite_url.split("///", 1)[1]).parent
    aside = folder.with_name("db-aside")
    async with serve(models, guard_home, sqlite_url) as client:
        assert (await client.post(CHAT, json=BODY, headers=AUTH)).status_code == 200
        # The database disappears: its files are gone and the pooled connections with them.
        await client.app.state.db_engine.dispose()
        folder.rename(aside)
        try:
            await refused_everywhere(client)
            status, report = await readiness(client)
            assert status == 503
            assert report["database"].startswith("unavailable")
        finally:
            aside.rename(folder)
        await ready_again(client)


ADMIN_DB = "postgres"
OWN_DB = "helper_c_failclosed"


async def _admin(url: str, *statements: str) -> None:
    engine = create_async_engine(make_url(url).set(database=ADMIN_DB), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
async def own_postgres() -> AsyncIterator[str]:
    """A database of this test's own (it is taken offline), migrated from scratch."""
    base = postgres_url()
    await _admin(base, f"DROP DATABASE IF EXISTS {OWN_DB} WITH (FORCE)", f"CREATE DATABASE {OWN_DB}")
    url = make_url(base).set(database=OWN_DB).render_as_string(hide_password=False)
    await asyncio.to_thread(upgrade, url)
    yield url
    await _admin(base, f"DROP DATABASE IF EXISTS {OWN_DB} WITH (FORCE)")


async def test_postgres_going_away_gives_no_200_and_recovers(
    models: Models, guard_home: Path, own_postgres: str
) -> None:
    async with serve(models, guard_home, own_postgres) as client:
        assert (await client.post(CHAT, json=BODY, headers=AUTH)).status_code == 200
        await _admin(
            own_postgres,
            f"ALTER DATABASE {OWN_DB} ALLOW_CONNECTIONS false",
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{OWN_DB}'",
        )
        try:
            await refused_everywhere(client)
            status, report = await readiness(client)
            assert status == 503
            assert report["database"].startswith("unavailable")
        finally:
            await _admin(own_postgres, f"ALTER DATABASE {OWN_DB} ALLOW_CONNECTIONS true")
        await ready_again(client)
        answered = [r for r in await audit_rows(own_postgres) if r["http_status"] == 200]
        assert len(answered) == 3, "the chat before, the chat and scan after: nothing answered while it was gone"
