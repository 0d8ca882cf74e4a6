"""The Redis limiter against the real Redis of GUARD_TEST_REDIS_URL (see tests/services.py when none answers)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from guard.store.rate_limits import Rate
from guard.store.rate_limits_redis import RedisRateLimiter
from tests.services import redis_url

pytestmark = pytest.mark.unit


async def test_fixed_window_counts_concurrent_hits_and_expires() -> None:
    prefix = f"guard:test:{uuid.uuid4().hex}:"
    limiter = RedisRateLimiter(redis_url(), prefix=prefix)
    try:
        now = 1_000_020.5  # half a second into the minute window that starts at 1_000_020
        rate = Rate(limit=5, period_s=60)
        decisions = await asyncio.gather(*(limiter.hit("k1", rate, now=now) for _ in range(8)))
        assert sorted(d.count for d in decisions) == list(range(1, 9))
        assert sum(d.allowed for d in decisions) == 5
        assert {d.retry_after_s for d in decisions} == {60}  # 59.5 s left, rounded up
        # Another key and the next window count from 1.
        assert (await limiter.hit("k2", rate, now=now)).count == 1
        assert (await limiter.hit("k1", rate, now=now + 60)).count == 1
        ttl = await limiter._redis.ttl(f"{prefix}k1:{int(now) // 60 * 60}")
        assert 0 < ttl <= 65
    finally:
        keys = [key async for key in limiter._redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await limiter._redis.delete(*keys)
        await limiter.aclose()


async def test_unreachable_redis_raises_connection_error() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(ConnectionError):
            await limiter.hit("k", Rate(limit=1, period_s=60))
    finally:
        await limiter.aclose()
