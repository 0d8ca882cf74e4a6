"""Reviewer reads: ``GET /v1/audit`` (filters, cursor pagination) and ``GET /v1/audit/{decision_id}``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter

from guard.api.auth import principal_of, require_scope
from guard.api.schemas import AuditPage
from guard.audit import AuditFilters, InvalidCursor, get_decision, list_decisions

__all__ = ["AuditController"]


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]
    guards = [require_scope("audit:read")]

    @get("/", operation_id="listDecisions")
    async def list_decisions(
        self,
        request: Request[Any, Any, Any],
        state: State,
        since: datetime | None = None,
        until: datetime | None = None,
        decision: str | None = None,
        policy: str | None = None,
        key_id: str | None = None,
        route: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """Decisions, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
        filters = AuditFilters(
            since=since,
            until=until,
            decision=decision,
            policy=policy,
            key_id=key_id,
            route=route,
            tenant=principal_of(request).tenant,  # a tenant's reviewer sees its own tenant only
        )
        try:
            items, next_cursor = await list_decisions(state.db_engine, filters, limit=limit, cursor=cursor)
        except InvalidCursor:
            raise ValidationException(extra=[{"message": "invalid cursor", "key": "cursor"}]) from None
        return AuditPage(items=items, next_cursor=next_cursor)

    @get("/{decision_id:str}", operation_id="getDecision")
    async def get_decision(self, request: Request[Any, Any, Any], state: State, decision_id: str) -> dict[str, Any]:
        record = await get_decision(state.db_engine, decision_id, tenant=principal_of(request).tenant)
        if record is None:
            raise NotFoundException("decision not found")
        return record
