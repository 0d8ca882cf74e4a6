from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit import create_engine
from guard.audit.migrate import upgrade
from guard.store.models import RateLimitWindowRow
from guard.store.rate_limits import Rate, RateLimiter, parse_rate, window_of

pytestmark = pytest.mark.unit


def test_parse_rate() -> None:
    assert parse_rate("60/minute") == Rate(limit=60, period_s=60)
    assert parse_rate("1/second") == Rate(1, 1)
    assert parse_rate("5/hour") == Rate(5, 3600)
    assert parse_rate("100/day") == Rate(100, 86400)
    for bad in ("60/min", "-1/minute", "60 / minute", "minute", "1.5/second"):
        with pytest.raises(ValueError, match="a rate looks like"):
            parse_rate(bad)


@pytest.mark.parametrize(
    ("now", "period", "start", "retry_after"),
    [
        (120.0, 60, 120, 60),  # on the edge: a fresh window, all of it left
        (120.2, 60, 120, 60),  # 59.8 s left rounds up
        (179.0, 60, 120, 1),
        (179.9, 60, 120, 1),  # less than a second left is still at least 1
        (1_700_000_000.5, 1, 1_700_000_000, 1),
        (1_700_000_123.0, 3600, 1_699_999_200, 2677),
        (86_400 * 3 + 5, 86400, 86_400 * 3, 86_395),
    ],
)
def test_window_of(now: float, period: int, start: int, retry_after: int) -> None:
    assert window_of(now, period) == (start, retry_after)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'rate.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()


async def test_counts_per_key_and_window_and_resets_on_the_next(engine: AsyncEngine) -> None:
    limiter = RateLimiter(engine)
    rate = Rate(limit=2, period_s=60)
    decisions = [await limiter.hit("a", rate, now=600.0 + i) for i in range(3)]
    assert [(d.allowed, d.count) for d in decisions] == [(True, 1), (True, 2), (False, 3)]
    assert [d.retry_after_s for d in decisions] == [60, 59, 58]
    assert (await limiter.hit("b", rate, now=603.0)).allowed  # another key has its own count
    nxt = await limiter.hit("a", rate, now=660.0)  # the next window starts from zero
    assert (nxt.allowed, nxt.count) == (True, 1)


async def test_concurrent_hits_are_counted_exactly(engine: AsyncEngine) -> None:
    limiters = [RateLimiter(engine), RateLimiter(engine)]  # as two replicas would
    rate = Rate(limit=10, period_s=3600)
    decisions = await asyncio.gather(*(limiters[i % 2].hit("k", rate, now=7200.0) for i in range(25)))
    assert sorted(d.count for d in decisions) == list(range(1, 26))
    assert sum(d.allowed for d in decisions) == 10


async def test_ended_windows_are_pruned(engine: AsyncEngine) -> None:
    limiter = RateLimiter(engine, prune_every_s=0)
    await limiter.hit("old", Rate(1, 60), now=1_000.0)
    await limiter.hit("day", Rate(1, 86400), now=86_400 * 2 + 10)  # a live day window is kept
    await limiter.hit("new", Rate(1, 60), now=86_400 * 2 + 20)
    async with engine.connect() as connection:
        keys = (await connection.execute(select(RateLimitWindowRow.key_id))).scalars().all()
        total = (await connection.execute(select(func.count()).select_from(RateLimitWindowRow))).scalar_one()
    assert sorted(keys) == ["day", "new"]
    assert total == 2
