"""Reviewer-page sign-in attempts: counted per client address and recorded as admin events.

Only failed attempts count, in the database's fixed windows (:class:`~guard.store.rate_limits.RateLimiter`, so
every replica on the database shares the count). Once an address has ``rate.limit`` failures in the window, every
attempt from it, a right key included, is refused until the window ends: checking the key first would tell a
guesser which guess was right. Every attempt, refused ones included, is a ``reviewer.sign_in`` admin event with its
outcome, the key id when a key matched, and the address only as a keyed digest (HMAC with the audit's subject key;
no raw address, no key material).
"""

from __future__ import annotations

import asyncio
import random
from typing import Literal

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit.admin_events import REVIEWER_SIGN_IN, REVIEWER_SIGN_OUT, record_admin_event
from guard.store.rate_limits import Rate, RateDecision, RateLimiter

__all__ = ["SIGN_IN_ACTOR", "Outcome", "SignIns"]

SIGN_IN_ACTOR = "web:audit-page"
Outcome = Literal["signed_in", "wrong_key", "lacks_scope", "rate_limited", "key_rate_limited"]
_ATTEMPTS = 8  # one chain for every admin event: concurrent sign-ins on several replicas race for its head


class SignIns:
    """The per-address failure limit and the audit of sign-ins and sign-outs. Database errors propagate: the caller
    must fail closed (no sign-in without its record, no attempt unlimited)."""

    def __init__(self, engine: AsyncEngine, rate: Rate) -> None:
        self._engine = engine
        self._limiter = RateLimiter(engine)
        self.rate = rate

    @staticmethod
    def _bucket(address_digest: str) -> str:
        return "signin:" + address_digest[:32]

    async def check(self, address_digest: str) -> RateDecision:
        """Whether this address may try a key now (``allowed``), without counting the attempt."""
        return await self._limiter.peek(self._bucket(address_digest), self.rate)

    async def failed(self, address_digest: str) -> RateDecision:
        """Count one failed attempt; ``allowed`` False when it is beyond the limit (answer it as limited)."""
        return await self._limiter.hit(self._bucket(address_digest), self.rate)

    async def record(
        self, outcome: Outcome, *, address_digest: str, hmac_key_id: str, key_id: str | None = None
    ) -> None:
        """One ``reviewer.sign_in`` admin event."""
        details = {"outcome": outcome, "address_hmac": address_digest, "hmac_key_id": hmac_key_id}
        await self._append(REVIEWER_SIGN_IN, key_id, details)

    async def record_sign_out(self, key_id: str | None, *, address_digest: str, hmac_key_id: str) -> None:
        await self._append(REVIEWER_SIGN_OUT, key_id, {"address_hmac": address_digest, "hmac_key_id": hmac_key_id})

    async def _append(self, action: str, subject: str | None, details: dict[str, str]) -> None:
        """Append in a transaction of its own; retried when another writer took the chain head first (unique
        ``prev_hash``) or held SQLite's write lock."""
        for attempt in range(_ATTEMPTS):
            try:
                async with self._engine.begin() as connection:
                    await record_admin_event(
                        connection, actor=SIGN_IN_ACTOR, action=action, subject=subject, details=details
                    )
                return
            except (IntegrityError, OperationalError):
                if attempt == _ATTEMPTS - 1:
                    raise
                await asyncio.sleep(random.uniform(0, 0.02 * (attempt + 1)))  # noqa: S311 (jitter, not a secret)
