"""Reads for shadow reports and replays: the records that answer requests in a time range, oldest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from guard.audit.models import DecisionRow
from guard.audit.queries import row_to_dict

__all__ = ["answered_decisions"]


async def answered_decisions(
    engine: AsyncEngine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    policy: str | None = None,
    with_shadow: bool = False,
) -> list[dict[str, Any]]:
    """Every answered decision (``outcome = ok``) in ``[since, until)``, under ``policy`` if given.

    A stream counts once, by its closing record (which holds the input and the output stage); its opening record
    is skipped. ``with_shadow`` keeps only rows that carry a shadow evaluation (filtered here: a JSON null and a
    SQL NULL read back alike)."""
    conditions = [DecisionRow.outcome == "ok", DecisionRow.kind != "stream_open"]
    if since is not None:
        conditions.append(DecisionRow.created_at >= since)
    if until is not None:
        conditions.append(DecisionRow.created_at < until)
    if policy is not None:
        conditions.append(DecisionRow.policy_name == policy)
    query = select(DecisionRow).where(*conditions).order_by(DecisionRow.created_at, DecisionRow.decision_id)
    async with async_sessionmaker(engine)() as session:
        rows = [row_to_dict(row) for row in (await session.scalars(query)).all()]
    return [row for row in rows if row["shadow"]] if with_shadow else rows
