"""Reviewer queries: filters shared by list, export and stats; cursor-paginated lists (newest first); one decision.

Finding filters (check, type, stage) look inside the ``findings`` JSON list: JSONB containment on PostgreSQL,
``json_each`` on SQLite. All of a filter's finding fields must hold for the same finding.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from guard.audit.models import DecisionRow
from guard.errors import GuardError

__all__ = [
    "DECISIONS",
    "KINDS",
    "STAGES",
    "AuditFilters",
    "InvalidCursor",
    "count_decisions",
    "filter_conditions",
    "get_decision",
    "iter_decisions",
    "linked_record_id",
    "list_decisions",
    "row_to_dict",
]

DECISIONS = ("allow", "redact", "flag", "block")
STAGES = ("input", "output")
KINDS = ("request", "stream_open", "stream_close")
_COLUMNS = [column.key for column in DecisionRow.__table__.columns]


class InvalidCursor(GuardError, ValueError):
    """A cursor that this server did not hand out."""


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """What a reviewer narrows the log to; ``None`` leaves a field unfiltered."""

    since: datetime | None = None
    until: datetime | None = None
    decision: str | None = None
    policy: str | None = None
    policy_version: str | None = None
    key_id: str | None = None
    route: str | None = None
    outcome: str | None = None
    kind: str | None = None
    check: str | None = None
    """A finding's check (``pii``, ``toxicity``, ``prohibited_use``, ``injection``)."""
    finding_type: str | None = None
    """A finding's type: the PII entity, toxicity label or prohibited-use category."""
    stage: str | None = None
    """The stage (``input``/``output``) a finding was made in."""
    prompt_hmac: str | None = None
    """Decisions on the same prompt (the ``prompt_hmac`` of one decision finds the others)."""
    client_ref: str | None = None
    """Decisions on one call of a calling gateway (LiteLLM's ``litellm_call_id``)."""
    tenant: str | None = None
    """A reviewer key with a tenant sees only that tenant's records (set from the key, never from the request)."""


def row_to_dict(row: DecisionRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _COLUMNS}


def _encode_cursor(row: DecisionRow) -> str:
    raw = f"{row.created_at.isoformat()}|{row.decision_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, decision_id = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().split("|", 1)
        return datetime.fromisoformat(created), decision_id
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidCursor("invalid cursor") from None


def _has_finding(dialect: str, fields: dict[str, str]) -> ColumnElement[bool]:
    """Rows with one finding holding every ``fields`` value."""
    if dialect == "postgresql":
        return DecisionRow.findings.op("@>", is_comparison=True)(literal([fields], JSONB))
    element = func.json_each(DecisionRow.findings).table_valued("value")
    matches = [func.json_extract(element.c.value, f"$.{name}") == value for name, value in fields.items()]
    return exists(select(literal(1)).select_from(element).where(*matches))


def filter_conditions(filters: AuditFilters, dialect: str) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``filters`` for a database of ``dialect`` (``engine.dialect.name``)."""
    conditions: list[ColumnElement[bool]] = []
    if filters.since is not None:
        conditions.append(DecisionRow.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(DecisionRow.created_at < filters.until)
    for column, value in (
        (DecisionRow.decision, filters.decision),
        (DecisionRow.policy_name, filters.policy),
        (DecisionRow.policy_version, filters.policy_version),
        (DecisionRow.key_id, filters.key_id),
        (DecisionRow.route, filters.route),
        (DecisionRow.outcome, filters.outcome),
        (DecisionRow.kind, filters.kind),
        (DecisionRow.tenant, filters.tenant),
        (DecisionRow.prompt_hmac, filters.prompt_hmac),
        (DecisionRow.client_ref, filters.client_ref),
    ):
        if value is not None:
            conditions.append(column == value)
    finding = {
        name: value
        for name, value in (("check", filters.check), ("type", filters.finding_type), ("stage", filters.stage))
        if value is not None
    }
    if finding:
        conditions.append(_has_finding(dialect, finding))
    return conditions


async def list_decisions(
    engine: AsyncEngine, filters: AuditFilters, *, limit: int, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of decisions and the cursor of the next page (``None`` at the end)."""
    conditions = filter_conditions(filters, engine.dialect.name)
    if cursor is not None:
        created, decision_id = _decode_cursor(cursor)
        conditions.append(
            or_(
                DecisionRow.created_at < created,
                and_(DecisionRow.created_at == created, DecisionRow.decision_id < decision_id),
            )
        )
    query = (
        select(DecisionRow)
        .where(*conditions)
        .order_by(DecisionRow.created_at.desc(), DecisionRow.decision_id.desc())
        .limit(limit + 1)
    )
    async with async_sessionmaker(engine)() as session:
        rows = list((await session.scalars(query)).all())
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return [row_to_dict(row) for row in rows[:limit]], next_cursor


async def iter_decisions(
    engine: AsyncEngine, filters: AuditFilters, *, chunk: int = 500
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every matching decision, newest first, in pages of ``chunk`` (keyset cursor: constant memory)."""
    cursor: str | None = None
    while True:
        rows, cursor = await list_decisions(engine, filters, limit=chunk, cursor=cursor)
        if rows:
            yield rows
        if cursor is None:
            return


async def count_decisions(engine: AsyncEngine, filters: AuditFilters) -> int:
    query = select(func.count()).select_from(DecisionRow).where(*filter_conditions(filters, engine.dialect.name))
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def get_decision(engine: AsyncEngine, decision_id: str, *, tenant: str | None = None) -> dict[str, Any] | None:
    """One decision; with ``tenant``, only if it belongs to that tenant (another tenant's record reads as absent)."""
    async with async_sessionmaker(engine)() as session:
        row = await session.get(DecisionRow, decision_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        return None
    return row_to_dict(row)


async def linked_record_id(engine: AsyncEngine, record: dict[str, Any]) -> str | None:
    """The other record of a stream: a ``stream_close`` names its open as ``parent_id``; an open is found by it."""
    if record["kind"] == "stream_close":
        return record["parent_id"]  # type: ignore[no-any-return]
    if record["kind"] != "stream_open":
        return None
    query = select(DecisionRow.decision_id).where(DecisionRow.parent_id == record["decision_id"]).limit(1)
    async with engine.connect() as connection:
        return (await connection.execute(query)).scalar_one_or_none()
