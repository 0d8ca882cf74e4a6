"""The reviewer page's sign-in session: an opaque random id in an HttpOnly, SameSite=Strict cookie (Secure over
https), the data (key id, tenant, scopes; never the key) in a server-side store, and a same-origin check on the
form posts.

The store is the app's ``audit_sessions`` store, which the app registers as the database-backed
:class:`~guard.store.sessions.ReviewerSessionStore`: every replica on one database shares the sessions, and the
table holds only the sha256 of each session id. A store that cannot be read or written fails closed (503).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.exceptions import ServiceUnavailableException
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.stores.base import Store
from litestar.types import Empty, Message, ScopeSession
from sqlalchemy.exc import SQLAlchemyError

from guard.store.sessions import SESSION_NAMESPACE

__all__ = ["SESSION", "SESSION_COOKIE", "mark_signed_in", "same_origin"]

SESSION_COOKIE = "guard_audit_session"
SESSION_MAX_AGE_S = 8 * 3600
_SIGNED_IN = "audit_signed_in"


def mark_signed_in(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Have this response start a new session (a fresh id: an id the browser brought is never kept)."""
    connection.scope.setdefault("state", {})[_SIGNED_IN] = True


class _Backend(ServerSideSessionBackend):
    """Litestar's server-side backend with a stricter cookie policy: a session exists only from a sign-in (anonymous
    visits get no cookie and no store entry), lives ``max_age`` from it (no sliding renewal), and its cookie is
    Secure whenever the request came over https."""

    async def get(self, session_id: str, store: Store) -> bytes | None:
        try:
            return await super().get(session_id, store)
        except (SQLAlchemyError, OSError):  # never treat an unreadable store as "signed out" or "signed in"
            raise ServiceUnavailableException("the session could not be checked: the database is unreachable") from None

    async def set(self, session_id: str, data: bytes, store: Store) -> None:
        try:
            await super().set(session_id, data, store)
        except (SQLAlchemyError, OSError):
            raise ServiceUnavailableException("the session could not be stored: the database is unreachable") from None

    async def delete(self, session_id: str, store: Store) -> None:
        try:
            await super().delete(session_id, store)
        except (SQLAlchemyError, OSError):
            raise ServiceUnavailableException("the session could not be ended: the database is unreachable") from None

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> None:
        store = self.config.get_store_from_app(connection.scope["app"])
        brought = connection.cookies.get(self.config.key)
        params: dict[str, Any] = {
            "key": self.config.key,
            "path": self.config.path,
            "httponly": True,
            "samesite": "strict",
            "secure": connection.url.scheme == "https",
        }
        headers = MutableScopeHeaders.from_message(message)
        if connection.scope.get("state", {}).get(_SIGNED_IN) and scope_session and scope_session is not Empty:
            if brought:
                await self.delete(brought, store)
            session_id = self.generate_session_id()
            await self.set(session_id, self.serialize_data(scope_session, connection.scope), store)
            cookie = Cookie(value=session_id, max_age=self.config.max_age, **params)
            headers.add("Set-Cookie", cookie.to_header(header=""))
        elif scope_session is Empty and brought:  # signed out
            await self.delete(brought, store)
            headers.add("Set-Cookie", Cookie(value="", max_age=0, expires=0, **params).to_header(header=""))


@dataclass
class _Config(ServerSideSessionConfig):
    _backend_class = _Backend


SESSION = _Config(
    key=SESSION_COOKIE, max_age=SESSION_MAX_AGE_S, samesite="strict", httponly=True, path="/", store=SESSION_NAMESPACE
)


def same_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether a form post comes from this site (CSRF defence beside SameSite=Strict). Browsers send
    ``Sec-Fetch-Site``: it must say same-origin (or a typed navigation). Without it, an ``Origin`` must name this
    host; under ``Referrer-Policy: no-referrer`` browsers send ``Origin: null`` even for same-site posts, so a null
    origin is judged by ``Sec-Fetch-Site`` alone."""
    site = connection.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = connection.headers.get("origin")
    if origin is None or origin == "null":
        return True  # a non-browser client, or a browser too old for Fetch Metadata (SameSite still holds)
    return urlsplit(origin).netloc == connection.headers.get("host", "")
