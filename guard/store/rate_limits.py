"""Per-key rate limits as fixed-window counters in the database, so every replica shares one count.

Each request of a limited key runs one atomic upsert on ``rate_limit_windows``::

    INSERT (key_id, window_start, count=1) ON CONFLICT (key_id, window_start) DO UPDATE SET count = count + 1
    RETURNING count

and is allowed while the returned count is within the limit. Windows are aligned to the epoch (a ``60/minute`` key
counts per clock minute), so a client can send up to the limit at the end of one window and again at the start of
the next: a burst of up to twice the limit across a window edge. That is the price of one row and one statement per
request; a sliding window or a token bucket would need a read-modify-write per request. Rejected requests count
too, so hammering a key does not reopen its window early. Windows that ended are pruned now and then.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.store.models import RateLimitWindowRow

__all__ = ["PERIODS", "Rate", "RateDecision", "RateLimiter", "parse_rate", "window_of"]

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_LONGEST = max(PERIODS.values())
_RATE = re.compile(r"^(\d+)/(second|minute|hour|day)$")


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``period_s`` seconds."""

    limit: int
    period_s: int


@lru_cache(maxsize=1024)
def parse_rate(text: str) -> Rate:
    """``"60/minute"`` → ``Rate(60, 60)``; cached, since every request of a key carries the same string."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError("a rate looks like 60/minute (per second, minute, hour or day)")
    return Rate(limit=int(match.group(1)), period_s=PERIODS[match.group(2)])


def window_of(now: float, period_s: int) -> tuple[int, int]:
    """The window holding ``now``: its start (epoch seconds, a multiple of the period) and the whole seconds until
    it ends, at least 1 (a Retry-After value)."""
    start = int(now) // period_s * period_s
    return start, max(1, math.ceil(start + period_s - now))


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    count: int
    """Requests counted in this window, this one included."""
    retry_after_s: int
    """Seconds until the window ends."""


class RateLimiter:
    """Counts requests per key in the database; prunes ended windows at most every ``prune_every_s`` seconds."""

    def __init__(self, engine: AsyncEngine, *, prune_every_s: float = 600.0) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"rate limits need SQLite or PostgreSQL, not {dialect}")
        self._engine = engine
        self._insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        self._prune_every_s = prune_every_s
        self._next_prune = time.monotonic()  # the first hit prunes what an earlier run left behind

    async def hit(self, key_id: str, rate: Rate, *, now: float | None = None) -> RateDecision:
        """Count one request of ``key_id`` and say whether it is within ``rate``. Database errors propagate: the
        caller must fail closed."""
        now = time.time() if now is None else now
        start, retry_after = window_of(now, rate.period_s)
        windows = RateLimitWindowRow
        statement = (
            self._insert(windows)
            .values(key_id=key_id, window_start=start, count=1)
            .on_conflict_do_update(
                index_elements=[windows.key_id, windows.window_start], set_={"count": windows.count + 1}
            )
            .returning(windows.count)
        )
        async with self._engine.begin() as connection:
            count = int((await connection.execute(statement)).scalar_one())
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + self._prune_every_s
                # Every period is at most a day, so a window that started over a day ago has ended.
                await connection.execute(delete(windows).where(windows.window_start < int(now) - _LONGEST))
        return RateDecision(allowed=count <= rate.limit, count=count, retry_after_s=retry_after)

    async def peek(self, key_id: str, rate: Rate, *, now: float | None = None) -> RateDecision:
        """The current window's count for ``key_id`` without counting anything; ``allowed`` says whether one more
        hit would still be within ``rate`` (a check before work that only failures are counted for)."""
        now = time.time() if now is None else now
        start, retry_after = window_of(now, rate.period_s)
        windows = RateLimitWindowRow
        query = select(windows.count).where(windows.key_id == key_id, windows.window_start == start)
        async with self._engine.connect() as connection:
            count = int((await connection.execute(query)).scalar_one_or_none() or 0)
        return RateDecision(allowed=count < rate.limit, count=count, retry_after_s=retry_after)
