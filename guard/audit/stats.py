"""Decision counts per UTC day, by decision and by finding category (``check:type``), computed in SQL."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import ColumnElement, distinct, func, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit.models import DecisionRow
from guard.audit.queries import AuditFilters, filter_conditions

__all__ = ["AuditStats", "CategoryCount", "DecisionCount", "decision_stats"]


class DecisionCount(msgspec.Struct):
    day: str
    """The UTC day, ``YYYY-MM-DD``."""
    decision: str
    count: int


class CategoryCount(msgspec.Struct):
    day: str
    category: str
    """``check:type``, e.g. ``pii:EMAIL_ADDRESS`` or ``toxicity:toxicity``."""
    count: int
    """Decisions with at least one such finding."""


class AuditStats(msgspec.Struct):
    by_decision: list[DecisionCount]
    by_category: list[CategoryCount]


def _day(dialect: str) -> ColumnElement[str]:
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", DecisionRow.created_at), "YYYY-MM-DD")
    return func.date(DecisionRow.created_at)  # SQLite stores UTC times as ISO text


def _category(dialect: str) -> tuple[Any, ColumnElement[str]]:
    """A table of each row's findings and the ``check:type`` of each."""
    if dialect == "postgresql":
        element = func.jsonb_array_elements(DecisionRow.findings).table_valued("value")
        field = func.jsonb_extract_path_text
        return element, field(element.c.value, "check").concat(":").concat(field(element.c.value, "type"))
    element = func.json_each(DecisionRow.findings).table_valued("value")
    field = func.json_extract
    return element, field(element.c.value, "$.check").concat(":").concat(field(element.c.value, "$.type"))


async def decision_stats(engine: AsyncEngine, filters: AuditFilters) -> AuditStats:
    """Counts of the decisions matching ``filters``, oldest day first."""
    dialect = engine.dialect.name
    conditions = filter_conditions(filters, dialect)
    day = _day(dialect).label("day")
    by_decision = (
        select(day, DecisionRow.decision, func.count())
        .where(*conditions)
        .group_by(day, DecisionRow.decision)
        .order_by(day, DecisionRow.decision)
    )
    element, category = _category(dialect)
    labelled = category.label("category")
    by_category = (
        select(day, labelled, func.count(distinct(DecisionRow.decision_id)))
        .select_from(DecisionRow.__table__.join(element, true()))  # a function in FROM sees the row: lateral
        .where(*conditions)
        .group_by(day, labelled)
        .order_by(day, labelled)
    )
    async with engine.connect() as connection:
        decisions = [DecisionCount(str(d), str(v), int(n)) for d, v, n in await connection.execute(by_decision)]
        categories = [CategoryCount(str(d), str(c), int(n)) for d, c, n in await connection.execute(by_category)]
    return AuditStats(by_decision=decisions, by_category=categories)
