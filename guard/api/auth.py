"""Bearer-key authentication and scopes. Keys are kept as sha256 digests and compared in constant time.

The bootstrap key (``GUARD_API_KEY``) has every scope and may name any policy; scoped keys live in the
``api_keys`` table (``guard keys create``). No key: 401; unknown or revoked key: 401; a key without the route's
scope, or naming a policy it is not bound to: 403; a key over its rate limit: 429 with Retry-After (audited as
rejected; the bootstrap key has no limit). The database unreachable during key lookup or rate counting: 503.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    ServiceUnavailableException,
    TooManyRequestsException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard
from sqlalchemy.exc import SQLAlchemyError

from guard.pipeline import Caller
from guard.store.api_keys import SCOPES, ApiKey, find_api_key
from guard.store.rate_limits import RateLimiter, parse_rate

__all__ = [
    "BOOTSTRAP_KEY_ID",
    "Principal",
    "caller_of",
    "hash_key",
    "policy_for",
    "principal_for_key",
    "principal_of",
    "require_api_key",
    "require_scope",
]

BOOTSTRAP_KEY_ID = "bootstrap"
_PRINCIPAL = "principal"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, scopes, tenant and policy binding (``unrestricted``: any policy)."""

    key_id: str
    scopes: frozenset[str]
    tenant: str | None = None
    policy: str | None = None
    allowed_policies: frozenset[str] = frozenset()
    unrestricted: bool = False


_BOOTSTRAP = Principal(key_id=BOOTSTRAP_KEY_ID, scopes=frozenset(SCOPES), unrestricted=True)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


async def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: ``Authorization: Bearer <key>`` (or ``x-api-key: <key>``, as LiteLLM's guardrail client
    sends its ``api_key``) must be the bootstrap key or a live scoped key."""
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    token = token or connection.headers.get("x-api-key", "").strip()
    if not token:
        raise NotAuthorizedException("missing bearer token (Authorization: Bearer <key>)")
    principal = await principal_for_key(connection, token)
    if principal is None:
        raise NotAuthorizedException("invalid API key")
    state = connection.scope.setdefault("state", {})
    state[_PRINCIPAL] = principal
    state["key_id"], state["tenant"] = principal.key_id, principal.tenant


async def principal_for_key(connection: ASGIConnection[Any, Any, Any, Any], key: str) -> Principal | None:
    """Who ``key`` is: the bootstrap key or a live scoped key (counted against its rate limit: 429 when over it,
    503 when the database is unreachable); ``None`` for an unknown or revoked key."""
    if hmac.compare_digest(hash_key(key), connection.app.state.api_key_hash):
        return _BOOTSTRAP
    found = await _find_within_rate(connection, key)
    if found is None:
        return None
    return Principal(
        key_id=found.key_id,
        scopes=frozenset(found.scopes),
        tenant=found.tenant,
        policy=found.policy,
        allowed_policies=frozenset(found.allowed_policies),
    )


async def _find_within_rate(connection: ASGIConnection[Any, Any, Any, Any], token: str) -> ApiKey | None:
    """The live key for ``token``, counted against its rate limit (429 when over it). Fails closed: a database
    error here is a 503, never a request let through unauthenticated or unlimited."""
    try:
        found = await find_api_key(connection.app.state.db_engine, token)
        if found is None or found.rate is None:
            return found
        limiter: RateLimiter = connection.app.state.rate_limiter
        decision = await limiter.hit(found.key_id, parse_rate(found.rate))
    except (SQLAlchemyError, OSError):
        raise ServiceUnavailableException("the API key could not be checked: the database is unreachable") from None
    if not decision.allowed:
        state = connection.scope.setdefault("state", {})
        state["key_id"], state["tenant"] = found.key_id, found.tenant  # for the refusal's audit row (errors.py)
        raise TooManyRequestsException(
            f"rate limit of {found.rate} exceeded for this API key",
            headers={"Retry-After": str(decision.retry_after_s)},
        )
    return found


def require_scope(*any_of: str) -> Guard:
    """A route guard (after :func:`require_api_key`): the key needs one of ``any_of``, else 403."""
    wanted = frozenset(any_of)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.scope.get("state", {}).get(_PRINCIPAL)
        if principal is None:
            raise NotAuthorizedException("missing bearer token (Authorization: Bearer <key>)")
        if not wanted & principal.scopes:
            raise PermissionDeniedException(f"this API key lacks the {' or '.join(sorted(wanted))} scope")

    return guard


def caller_of(request: Request[Any, Any, Any]) -> Caller:
    """The caller as the pipeline records it: key id and tenant (set by :func:`require_api_key`)."""
    state = request.scope.get("state", {})
    return Caller(key_id=state.get("key_id"), tenant=state.get("tenant"))


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal | None = request.scope.get("state", {}).get(_PRINCIPAL)
    if principal is None:  # only reachable on a route mounted without require_api_key
        raise NotAuthorizedException("missing bearer token (Authorization: Bearer <key>)")
    return principal


def policy_for(request: Request[Any, Any, Any], requested: str | None) -> str | None:
    """The policy this caller's request runs: its key's bound policy unless it names one it may use (else a 403,
    audited as rejected like every refusal: a caller can never pick a weaker policy than it was given)."""
    principal = principal_of(request)
    if principal.unrestricted:
        return requested
    if requested is None or requested == principal.policy:
        return principal.policy
    if requested in principal.allowed_policies:
        return requested
    raise PermissionDeniedException("this API key may not use the requested policy")
