"""Reviewer queries: filtered, cursor-paginated lists (newest first) and single decisions."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from guard.audit.models import DecisionRow

__all__ = ["AuditFilters", "InvalidCursor", "get_decision", "list_decisions", "row_to_dict"]

_COLUMNS = [column.key for column in DecisionRow.__table__.columns]


class InvalidCursor(ValueError):
    """A cursor that this server did not hand out."""


@dataclass(frozen=True, slots=True)
class AuditFilters:
    since: datetime | None = None
    until: datetime | None = None
    decision: str | None = None
    policy: str | None = None
    key_id: str | None = None
    route: str | None = None
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


async def list_decisions(
    engine: AsyncEngine, filters: AuditFilters, *, limit: int, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of decisions and the cursor of the next page (``None`` at the end)."""
    query = select(DecisionRow)
    conditions = []
    if filters.since is not None:
        conditions.append(DecisionRow.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(DecisionRow.created_at < filters.until)
    for column, value in (
        (DecisionRow.decision, filters.decision),
        (DecisionRow.policy_name, filters.policy),
        (DecisionRow.key_id, filters.key_id),
        (DecisionRow.route, filters.route),
        (DecisionRow.tenant, filters.tenant),
    ):
        if value is not None:
            conditions.append(column == value)
    if cursor is not None:
        created, decision_id = _decode_cursor(cursor)
        conditions.append(
            or_(
                DecisionRow.created_at < created,
                and_(DecisionRow.created_at == created, DecisionRow.decision_id < decision_id),
            )
        )
    query = (
        query.where(*conditions)
        .order_by(DecisionRow.created_at.desc(), DecisionRow.decision_id.desc())
        .limit(limit + 1)
    )
    async with async_sessionmaker(engine)() as session:
        rows = list((await session.scalars(query)).all())
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return [row_to_dict(row) for row in rows[:limit]], next_cursor


async def get_decision(engine: AsyncEngine, decision_id: str, *, tenant: str | None = None) -> dict[str, Any] | None:
    """One decision; with ``tenant``, only if it belongs to that tenant (another tenant's record reads as absent)."""
    async with async_sessionmaker(engine)() as session:
        row = await session.get(DecisionRow, decision_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        return None
    return row_to_dict(row)
