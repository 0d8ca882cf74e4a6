"""Per-key rate limits against the real app and database: 429 + Retry-After, audited, shared by replicas."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.exc import OperationalError

from guard.app import create_app
from guard.models import Models
from guard.store.rate_limits import Rate, RateDecision, RateLimiter
from tests.integration.conftest import AUTH, dev_settings
from tests.integration.dbdump import audit_rows
from tests.integration.test_api_keys import _assert_error, _bearer, _key
from tests.services import redis_url

pytestmark = pytest.mark.integration

SCAN = {"text": "hello there"}
LIMIT = 3


def _clear_of_window_edge(period_s: int = 60, margin_s: float = 8.0) -> None:
    """Fixed windows reset on the clock: wait out a window about to end, so N+1 requests land in one window."""
    left = period_s - time.time() % period_s
    if left < margin_s:
        time.sleep(left + 0.1)


async def _scan(client: AsyncTestClient[Any], key: str) -> Any:
    return await client.post("/v1/scan", json=SCAN, headers=_bearer(key))


async def test_key_over_its_limit_gets_429_with_retry_after(client: AsyncTestClient[Any], database_url: str) -> None:
    limited, limited_id = await _key(database_url, "scan", rate=f"{LIMIT}/minute", tenant="acme")
    other, _ = await _key(database_url, "scan", rate=f"{LIMIT}/minute")
    _clear_of_window_edge()
    for _ in range(LIMIT):
        response = await _scan(client, limited)
        assert response.status_code == 200, response.text
    refused = await _scan(client, limited)
    _assert_error(refused, 429, "rate_limited")
    assert "3/minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # another key has its own count; the bootstrap key has no limit
    assert (await _scan(client, other)).status_code == 200
    for _ in range(LIMIT + 2):
        assert (await client.post("/v1/scan", json=SCAN, headers=AUTH)).status_code == 200
    rows = [r for r in await audit_rows(database_url) if r["key_id"] == limited_id]
    assert sorted((r["outcome"], r["http_status"]) for r in rows) == [("ok", 200)] * LIMIT + [("rejected", 429)]
    rejected = next(r for r in rows if r["http_status"] == 429)
    assert (rejected["route"], rejected["tenant"], rejected["decision"]) == ("/v1/scan", "acme", "block")


async def test_replicas_share_the_count(guard_home: Path, database_url: str, models: Models) -> None:
    key, _ = await _key(database_url, "scan", rate=f"{LIMIT}/minute")
    settings = dev_settings(guard_home, database_url)
    _clear_of_window_edge()
    async with (
        AsyncTestClient(app=create_app(settings, models=models)) as first,
        AsyncTestClient(app=create_app(settings, models=models)) as second,
    ):
        statuses = [(await _scan(replica, key)).status_code for replica in (first, second, first, second, first)]
    assert statuses == [200, 200, 200, 429, 429]


async def test_replicas_share_the_count_in_redis(guard_home: Path, database_url: str, models: Models) -> None:
    """With GUARD_REDIS_URL the count lives in Redis (the real server of GUARD_TEST_REDIS_URL), shared the same
    way."""
    url = redis_url()
    key, _ = await _key(database_url, "scan", rate=f"{LIMIT}/minute")
    base = dev_settings(guard_home, database_url)
    settings = replace(base, database=replace(base.database, redis_url=url))
    _clear_of_window_edge()
    async with (
        AsyncTestClient(app=create_app(settings, models=models)) as first,
        AsyncTestClient(app=create_app(settings, models=models)) as second,
    ):
        assert type(first.app.state.rate_limiter).__name__ == "RedisRateLimiter"
        responses = [await _scan(replica, key) for replica in (first, second, first, second, first)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert 1 <= int(responses[-1].headers["retry-after"]) <= 60


class _DatabaseGone(RateLimiter):
    """The real limiter whose database went away (fault injection)."""

    async def hit(self, key_id: str, rate: Rate, *, now: float | None = None) -> RateDecision:
        raise OperationalError("INSERT INTO rate_limit_windows", {}, ConnectionRefusedError("database is gone"))


async def test_unreachable_database_fails_closed(client: AsyncTestClient[Any], database_url: str) -> None:
    limited, _ = await _key(database_url, "scan", rate="1000/minute")
    unlimited, _ = await _key(database_url, "scan")
    assert (await _scan(client, limited)).status_code == 200
    state = client.app.state
    state.rate_limiter = _DatabaseGone(state.db_engine)
    refused = await _scan(client, limited)
    _assert_error(refused, 503, "service_unavailable")
    assert refused.headers["retry-after"].isdigit()
    assert (await _scan(client, unlimited)).status_code == 200  # keys without a limit never count
