"""The reviewer page at ``/audit``: sign-in with an ``audit:read`` key, then a filterable table of decisions,
a drill-down to each explanation and charts, fed by session-authenticated JSON under ``/audit/api``.

The JSON endpoints run the same queries as ``/v1/audit`` (same filters, tenant taken from the signed-in key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, Request, Response, Router, get
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders, State
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, ServiceUnavailableException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractMiddleware
from litestar.params import Parameter
from litestar.static_files import create_static_files_router
from litestar.types import Message, Receive, Scope, Send
from sqlalchemy.exc import SQLAlchemyError

from guard.api.audit import audit_filters, decision_detail, decisions_page
from guard.api.audit_schemas import AuditDecisionDetail, AuditPage, AuditStats
from guard.api.auth import BOOTSTRAP_KEY_ID, Principal, principal_of, require_scope
from guard.api.web.session import SESSION
from guard.api.web.sign_in import READ_SCOPE, sign_in, sign_in_page, sign_out
from guard.audit import AuditFilters
from guard.audit.stats import decision_stats
from guard.store.api_keys import is_live_key

__all__ = ["audit_page_router"]

_HERE = Path(__file__).parent
_PRINCIPAL = "principal"
# No inline script or style anywhere, so the policy can be strict; framing and referrers are refused too.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_PAGE = (_HERE / "templates" / "audit.html").read_text(encoding="utf-8")


class SecurityHeadersMiddleware(AbstractMiddleware):
    """Adds :data:`SECURITY_HEADERS` to every response under ``/audit``: pages, assets (which Litestar sends as raw
    ASGI file responses, past layered response headers) and error bodies alike."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_secured)


async def _session_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The signed-in reviewer, or None; a scoped key revoked since sign-in ends its sessions."""
    data = connection.scope.get("session")
    key_id = data.get("key_id") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(key_id, str):
        return None
    try:
        if key_id != BOOTSTRAP_KEY_ID and not await is_live_key(connection.app.state.db_engine, key_id):
            return None
    except (SQLAlchemyError, OSError):  # fail closed, and say so: not a silent sign-out
        raise ServiceUnavailableException("the session could not be checked: the database is unreachable") from None
    return Principal(key_id=key_id, scopes=frozenset(data.get("scopes", ())), tenant=data.get("tenant"))


async def require_session(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Route guard for ``/audit/api``: a live sign-in session (the cookie), else 401."""
    principal = await _session_principal(connection)
    if principal is None:
        raise NotAuthorizedException("sign in at /audit first")
    state = connection.scope.setdefault("state", {})
    state[_PRINCIPAL] = principal
    state["key_id"], state["tenant"] = principal.key_id, principal.tenant


@get("/")
async def page(request: Request[Any, Any, Any]) -> Response[str]:
    """The reviewer page when signed in, else the sign-in form."""
    if await _session_principal(request) is None:
        return sign_in_page(200)
    return Response(_PAGE, media_type="text/html")


class ReviewerApi(Controller):
    """``/v1/audit``'s reads for the page, authenticated by the session cookie instead of a bearer key."""

    path = "/api"
    guards = [require_session, require_scope(READ_SCOPE)]
    dependencies = {"filters": Provide(audit_filters, sync_to_thread=False)}

    @get("/decisions")
    async def decisions(
        self,
        state: State,
        filters: AuditFilters,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        return await decisions_page(state.db_engine, filters, limit, cursor)

    @get("/decisions/{decision_id:str}")
    async def decision(self, request: Request[Any, Any, Any], state: State, decision_id: str) -> AuditDecisionDetail:
        return await decision_detail(state.db_engine, decision_id, principal_of(request).tenant)

    @get("/stats")
    async def stats(self, state: State, filters: AuditFilters) -> AuditStats:
        return await decision_stats(state.db_engine, filters)


def audit_page_router() -> Router:
    """``/audit``: the page, its assets under ``/audit/static``, sign-in/out and the JSON under ``/audit/api``."""
    assets = create_static_files_router(
        path="/static", directories=[_HERE / "static"], name="audit-static", include_in_schema=False
    )
    return Router(
        path="/audit",
        route_handlers=[page, sign_in, sign_out, ReviewerApi, assets],
        middleware=[SecurityHeadersMiddleware, SESSION.middleware],
        include_in_schema=False,
    )
