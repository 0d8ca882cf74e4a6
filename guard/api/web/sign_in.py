"""The reviewer page's sign-in and sign-out posts, each attempt audited and failures rate limited per client address.

The client address is the ASGI client's host. Behind a reverse proxy that is the proxy's address unless uvicorn
trusts the proxy's ``X-Forwarded-For`` (``FORWARDED_ALLOW_IPS`` / ``--forwarded-allow-ips``, by default only
127.0.0.1): then it is the address the proxy saw. Addresses are only ever stored as HMAC digests.
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template
from typing import Any

from litestar import Request, Response, post
from litestar.exceptions import PermissionDeniedException, ServiceUnavailableException, TooManyRequestsException
from litestar.response import Redirect
from sqlalchemy.exc import SQLAlchemyError

from guard.api.auth import principal_for_key
from guard.api.web.session import mark_signed_in, same_origin
from guard.audit import SubjectHasher
from guard.store.sign_ins import Outcome, SignIns

__all__ = ["READ_SCOPE", "sign_in", "sign_in_page", "sign_out"]

READ_SCOPE = "audit:read"
_SIGN_IN = Template((Path(__file__).parent / "templates" / "signin.html").read_text(encoding="utf-8"))
_UNCHECKED = "the sign-in could not be checked: the database is unreachable"


def sign_in_page(status: int, error: str | None = None) -> Response[str]:
    notice = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return Response(_SIGN_IN.substitute(error=notice), status_code=status, media_type="text/html")


class _Attempt:
    """One sign-in or sign-out post: its client address's digest and the audit of what became of it."""

    def __init__(self, request: Request[Any, Any, Any]) -> None:
        self.sign_ins: SignIns = request.app.state.sign_ins
        hasher: SubjectHasher = request.app.state.subject_hasher
        address = request.client.host if request.client else "unknown"
        self.address, self.hmac_key_id = hasher.digest("CLIENT_ADDRESS", address), hasher.key_id

    async def record(self, outcome: Outcome, key_id: str | None = None) -> None:
        try:
            await self.sign_ins.record(
                outcome, address_digest=self.address, hmac_key_id=self.hmac_key_id, key_id=key_id
            )
        except (SQLAlchemyError, OSError):  # no attempt goes unrecorded: refuse it instead
            raise ServiceUnavailableException(_UNCHECKED) from None

    async def limited(self, retry_after_s: int) -> TooManyRequestsException:
        await self.record("rate_limited")
        limit = f"{self.sign_ins.rate.limit} per {self.sign_ins.rate.period_s} s"
        return TooManyRequestsException(
            f"too many failed sign-ins from this address ({limit}); try again later",
            headers={"Retry-After": str(retry_after_s)},
        )

    async def failed(self, outcome: Outcome, key_id: str | None = None) -> None:
        """Count and record a refused key; raises the 429 when this failure is beyond the limit."""
        try:
            decision = await self.sign_ins.failed(self.address)
        except (SQLAlchemyError, OSError):
            raise ServiceUnavailableException(_UNCHECKED) from None
        if not decision.allowed:  # a race between replicas let it past the check: refuse it as limited
            raise await self.limited(decision.retry_after_s)
        await self.record(outcome, key_id)


@post("/session", status_code=303)
async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
    """Form post of a key with ``audit:read``: a new session, then back to the page. Nothing of the key is echoed,
    stored in the session or put in a URL. An address over its failure limit gets a 429 whatever key it sends."""
    if not same_origin(request):
        raise PermissionDeniedException("cross-site sign-in refused")
    attempt = _Attempt(request)
    try:
        allowed = await attempt.sign_ins.check(attempt.address)
    except (SQLAlchemyError, OSError):
        raise ServiceUnavailableException(_UNCHECKED) from None
    if not allowed.allowed:
        raise await attempt.limited(allowed.retry_after_s)
    form = await request.form()
    key = form.get("key")
    try:
        principal = await principal_for_key(request, key.strip()) if isinstance(key, str) and key.strip() else None
    except TooManyRequestsException:  # the key's own rate limit
        await attempt.record("key_rate_limited")
        raise
    if principal is None:
        await attempt.failed("wrong_key")
        return sign_in_page(401, "That key was not accepted.")
    if READ_SCOPE not in principal.scopes:
        await attempt.failed("lacks_scope", principal.key_id)
        return sign_in_page(403, f"That key lacks the {READ_SCOPE} scope.")
    await attempt.record("signed_in", principal.key_id)
    request.set_session({"key_id": principal.key_id, "tenant": principal.tenant, "scopes": sorted(principal.scopes)})
    mark_signed_in(request)
    return Redirect(path="/audit", status_code=303)


@post("/logout", status_code=303)
async def sign_out(request: Request[Any, Any, Any]) -> Redirect:
    """End this session (its row is deleted, so no replica accepts the cookie again); audited when one existed."""
    if not same_origin(request):
        raise PermissionDeniedException("cross-site sign-out refused")
    data = request.scope.get("session")
    if isinstance(data, dict) and data:
        attempt = _Attempt(request)
        key_id = data.get("key_id")
        try:
            await attempt.sign_ins.record_sign_out(
                key_id if isinstance(key_id, str) else None,
                address_digest=attempt.address,
                hmac_key_id=attempt.hmac_key_id,
            )
        except (SQLAlchemyError, OSError):
            raise ServiceUnavailableException("the sign-out could not be recorded") from None
    request.clear_session()
    return Redirect(path="/audit", status_code=303)
