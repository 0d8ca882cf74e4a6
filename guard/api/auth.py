"""Bearer-key authentication. Keys are kept as sha256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

__all__ = ["BOOTSTRAP_KEY_ID", "hash_key", "require_api_key"]

BOOTSTRAP_KEY_ID = "bootstrap"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: ``Authorization: Bearer <key>`` must match the bootstrap key (``GUARD_API_KEY``)."""
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException("missing bearer token (Authorization: Bearer <key>)")
    expected: bytes = connection.app.state.api_key_hash
    if not hmac.compare_digest(hash_key(token.strip()), expected):
        raise NotAuthorizedException("invalid API key")
    connection.scope.setdefault("state", {})["key_id"] = BOOTSTRAP_KEY_ID
