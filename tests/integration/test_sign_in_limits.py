"""Reviewer-page sign-ins against the real app and database (SQLite file and PostgreSQL): every attempt is a
``reviewer.sign_in`` admin event holding no key material and no raw address; failures beyond the per-address limit
get the JSON 429 with Retry-After, a right key included; an unusable limit stops the start."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine

from guard.app import StartupError, create_app
from guard.audit import SubjectHasher, load_keyring
from guard.audit.admin_events import REVIEWER_SIGN_IN, REVIEWER_SIGN_OUT, list_admin_events, verify_admin_events
from guard.audit.migrate import upgrade
from guard.models import Models
from guard.store.api_keys import create_api_key
from tests.integration.conftest import API_KEY, dev_settings

pytestmark = pytest.mark.integration

_RATE = "5/hour"  # an hour's window, so the test cannot straddle a window edge (the e2e test uses the default)


@pytest.fixture
async def limited(guard_home: Path, database_url: str, models: Models) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = dev_settings(guard_home, database_url)
    app = create_app(replace(settings, api=replace(settings.api, sign_in_rate=_RATE)), models=models)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def _events(database_url: str) -> list[Any]:
    engine = create_async_engine(database_url)
    try:
        assert (await verify_admin_events(engine))[1] is None  # the sign-in events keep the chain intact
        return [e for e in await list_admin_events(engine) if e.action in (REVIEWER_SIGN_IN, REVIEWER_SIGN_OUT)]
    finally:
        await engine.dispose()


async def _reader(database_url: str) -> tuple[str, str]:
    engine = create_async_engine(database_url)
    try:
        key, record = await create_api_key(engine, name="reader", scopes=["audit:read"], actor="test")
        return key, record.key_id
    finally:
        await engine.dispose()


async def test_failures_beyond_the_limit_get_429_and_every_attempt_is_audited(
    limited: AsyncTestClient[Any], database_url: str, guard_home: Path
) -> None:
    if time.time() % 3600 > 3580:  # stay inside one window
        await asyncio.sleep(3601 - time.time() % 3600)
    key, key_id = await _reader(database_url)
    signed = await limited.post("/audit/session", data={"key": key}, follow_redirects=False)
    assert signed.status_code == 303
    assert (await limited.post("/audit/logout", follow_redirects=False)).status_code == 303
    limited.cookies.clear()

    wrong = [f"gk-guess-{n}-" + "x" * 30 for n in range(5)]
    for guess in wrong:
        refused = await limited.post("/audit/session", data={"key": guess}, follow_redirects=False)
        assert refused.status_code == 401, refused.text
    over = await limited.post("/audit/session", data={"key": "gk-guess-6-" + "y" * 30}, follow_redirects=False)
    assert over.status_code == 429
    body = over.json()
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["request_id"]
    assert 1 <= int(over.headers["retry-after"]) <= 3600
    assert "set-cookie" not in over.headers
    # While limited, the right key is refused too (checking it would tell a guesser which guess was right).
    right = await limited.post("/audit/session", data={"key": key}, follow_redirects=False)
    assert right.status_code == 429
    assert "set-cookie" not in right.headers
    # The bearer API is a separate surface: the key still works there.
    assert (await limited.get("/v1/audit", headers={"Authorization": f"Bearer {key}"})).status_code == 200

    events = await _events(database_url)
    outcomes = [(e.action, e.details.get("outcome"), e.subject) for e in events]
    assert outcomes == [
        (REVIEWER_SIGN_IN, "signed_in", key_id),
        (REVIEWER_SIGN_OUT, None, key_id),
        *[(REVIEWER_SIGN_IN, "wrong_key", None)] * 5,
        (REVIEWER_SIGN_IN, "rate_limited", None),
        (REVIEWER_SIGN_IN, "rate_limited", None),
    ]
    hasher = SubjectHasher(load_keyring(guard_home / "audit-hmac.key", None))
    address = hasher.digest("CLIENT_ADDRESS", "testclient")  # Litestar's test client's address
    assert {e.details["address_hmac"] for e in events} == {address}
    assert {e.details["hmac_key_id"] for e in events} == {hasher.key_id}
    stored = json.dumps([[e.actor, e.subject, e.details] for e in events])
    for secret in (key, *wrong, API_KEY, "testclient"):
        assert secret not in stored  # no key material, no raw address


async def test_a_key_without_the_scope_counts_as_a_failure(limited: AsyncTestClient[Any], database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        scanner, record = await create_api_key(engine, name="scanner", scopes=["scan"], actor="test")
    finally:
        await engine.dispose()
    lacking = await limited.post("/audit/session", data={"key": scanner}, follow_redirects=False)
    assert lacking.status_code == 403
    (event,) = await _events(database_url)
    assert (event.subject, event.details["outcome"]) == (record.key_id, "lacks_scope")
    assert scanner not in json.dumps(event.details)


def test_an_unusable_sign_in_rate_stops_the_start(guard_home: Path, tmp_path: Path, models: Models) -> None:
    settings = dev_settings(guard_home, f"sqlite+aiosqlite:///{tmp_path / 'guard.db'}")
    with pytest.raises(StartupError, match="GUARD_SIGN_IN_RATE"):
        create_app(replace(settings, api=replace(settings.api, sign_in_rate="lots")), models=models)


async def test_a_missing_database_fails_closed_and_recovers(guard_home: Path, tmp_path: Path, models: Models) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    url = f"sqlite+aiosqlite:///{folder / 'guard.db'}"
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    key, _ = await _reader(url)
    app = create_app(dev_settings(guard_home, url), models=models)
    async with AsyncTestClient(app=app) as client:
        assert (await client.post("/audit/session", data={"key": key}, follow_redirects=False)).status_code == 303
        assert (await client.get("/audit/api/decisions")).status_code == 200
        await app.state.db_engine.dispose()
        folder.rename(tmp_path / "aside")
        try:
            # Sessions, sign-ins and sign-outs all answer the JSON 503: never "signed out", never unaudited.
            for response in (
                await client.get("/audit/api/decisions"),
                await client.get("/audit"),
                await client.post("/audit/logout", follow_redirects=False),
                await client.post("/audit/session", data={"key": key}, follow_redirects=False),
            ):
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "service_unavailable"
                assert key not in response.text
        finally:
            (tmp_path / "aside").rename(folder)
        assert (await client.get("/audit/api/decisions")).status_code == 200  # the same session, back without restart
