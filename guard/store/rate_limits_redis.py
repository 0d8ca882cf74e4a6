"""Per-key rate limits as fixed-window counters in Redis, for replicas that would rather not write a row per request.

Same semantics as :class:`guard.store.rate_limits.RateLimiter` (epoch-aligned windows, rejected requests count):
one Lua script increments ``guard:rate:<key_id>:<window_start>`` and sets its expiry on first use, atomically, so a
crash between the two can never leave a counter that never expires. Redis errors surface as ``ConnectionError``
(an ``OSError``, like a database that went away), so the caller fails closed (503).
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from guard.store.rate_limits import Rate, RateDecision, window_of

__all__ = ["RedisRateLimiter"]

# KEYS[1]: the window's counter; ARGV[1]: its lifetime in seconds. Returns the count, this request included.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class RedisRateLimiter:
    """Counts requests per key in Redis at ``url`` (``redis://host:port/db``)."""

    def __init__(self, url: str, *, prefix: str = "guard:rate:") -> None:
        self._redis: Redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._prefix = prefix
        self._script = self._redis.register_script(_HIT)

    async def hit(self, key_id: str, rate: Rate, *, now: float | None = None) -> RateDecision:
        """Count one request of ``key_id`` and say whether it is within ``rate``."""
        now = time.time() if now is None else now
        start, retry_after = window_of(now, rate.period_s)
        # Outlive the window a little so clock skew between replicas never resets a live count.
        try:
            count = int(await self._script(keys=[f"{self._prefix}{key_id}:{start}"], args=[rate.period_s + 5]))
        except RedisError as exc:
            raise ConnectionError(f"redis rate limiter unavailable: {type(exc).__name__}") from None
        return RateDecision(allowed=count <= rate.limit, count=count, retry_after_s=retry_after)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
