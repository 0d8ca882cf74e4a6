"""Reviewer reads: ``GET /v1/audit`` (filters, cursor pagination), ``/export`` (CSV/JSONL, streamed), ``/stats``
(counts per day) and ``/{decision_id}`` (the record with its explanation).

A reviewer key with a tenant sees only that tenant's records: the tenant filter comes from the key, never the query.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotFoundException, ValidationException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import Parameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.api.audit_schemas import AuditDecision, AuditDecisionDetail, AuditPage, AuditStats
from guard.api.auth import principal_of, require_scope
from guard.api.errors import ERROR_RESPONSES
from guard.audit import AuditFilters, InvalidCursor, get_decision, list_decisions
from guard.audit.explain import explain_record
from guard.audit.export import CONTENT_TYPES, export_chunks
from guard.audit.stats import decision_stats
from guard.store.policy_versions import load_stored_policy

__all__ = ["AuditController", "audit_filters", "decision_detail", "decisions_page"]

DecisionName = Literal["allow", "redact", "flag", "block"]
StageName = Literal["input", "output"]
KindName = Literal["request", "stream_open", "stream_close"]


def audit_filters(
    request: Request[Any, Any, Any],
    since: datetime | None = None,
    until: datetime | None = None,
    decision: DecisionName | None = None,
    policy: str | None = None,
    policy_version: str | None = None,
    key_id: str | None = None,
    route: str | None = None,
    outcome: str | None = None,
    kind: KindName | None = None,
    check: str | None = None,
    finding_type: str | None = None,
    stage: StageName | None = None,
    prompt_hmac: str | None = None,
    client_ref: str | None = None,
) -> AuditFilters:
    """The query's filters (a Litestar dependency, so every endpoint takes and validates the same ones)."""
    return AuditFilters(
        since=since,
        until=until,
        decision=decision,
        policy=policy,
        policy_version=policy_version,
        key_id=key_id,
        route=route,
        outcome=outcome,
        kind=kind,
        check=check,
        finding_type=finding_type,
        stage=stage,
        prompt_hmac=prompt_hmac,
        client_ref=client_ref,
        tenant=principal_of(request).tenant,
    )


async def decisions_page(engine: AsyncEngine, filters: AuditFilters, limit: int, cursor: str | None) -> AuditPage:
    """One page of decisions (the reviewer API and the reviewer page answer the same)."""
    try:
        items, next_cursor = await list_decisions(engine, filters, limit=limit, cursor=cursor)
    except InvalidCursor:
        raise ValidationException(extra=[{"message": "invalid cursor", "key": "cursor"}]) from None
    return AuditPage(items=[AuditDecision(**item) for item in items], next_cursor=next_cursor)


async def decision_detail(engine: AsyncEngine, decision_id: str, tenant: str | None) -> AuditDecisionDetail:
    """One decision and its explanation, if the caller's tenant may see it (else 404)."""
    record = await get_decision(engine, decision_id, tenant=tenant)
    if record is None:
        raise NotFoundException("decision not found")
    policy = await load_stored_policy(engine, record["policy_name"], record["policy_sha256"])
    explained = await explain_record(engine, record, policy)
    return AuditDecisionDetail(
        **record, explanation=explained.findings, linked_id=explained.linked_id, policy_found=explained.policy_found
    )


@dataclass
class _ExportOperation(Operation):
    """The export's 200 is CSV or JSON Lines (by ``format``), not the JSON the handler's signature implies."""

    def __post_init__(self) -> None:
        lines = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
        content = {f"{CONTENT_TYPES['csv']}; charset=utf-8": lines, CONTENT_TYPES["jsonl"]: lines}
        exported = OpenAPIResponse(description="The decisions", content=content)
        self.responses = {**(self.responses or {}), "200": exported}


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]
    guards = [require_scope("audit:read")]
    dependencies = {"filters": Provide(audit_filters, sync_to_thread=False)}

    @get("/", operation_id="listDecisions", responses=ERROR_RESPONSES)
    async def list_decisions(
        self,
        state: State,
        filters: AuditFilters,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """Decisions, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
        return await decisions_page(state.db_engine, filters, limit, cursor)

    @get("/export", operation_id="exportDecisions", responses=ERROR_RESPONSES, operation_class=_ExportOperation)
    async def export(self, state: State, filters: AuditFilters, format: Literal["csv", "jsonl"] = "csv") -> Stream:
        """Every matching decision, newest first, streamed as CSV (JSON columns as JSON text) or JSON Lines."""

        async def body() -> AsyncIterator[bytes]:
            async for _, chunk in export_chunks(state.db_engine, filters, format):
                yield chunk

        return Stream(
            body(),
            media_type=CONTENT_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="audit.{format}"'},
        )

    @get("/stats", operation_id="decisionStats", responses=ERROR_RESPONSES)
    async def stats(self, state: State, filters: AuditFilters) -> AuditStats:
        """Counts per UTC day by decision and by finding category (``check:type``)."""
        return await decision_stats(state.db_engine, filters)

    @get("/{decision_id:str}", operation_id="getDecision", responses=ERROR_RESPONSES)
    async def get_decision(
        self, request: Request[Any, Any, Any], state: State, decision_id: str
    ) -> AuditDecisionDetail:
        """One decision with its explanation: per finding the check, policy clause, score vs threshold, action and
        redacted span."""
        return await decision_detail(state.db_engine, decision_id, principal_of(request).tenant)
