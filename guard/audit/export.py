"""Audit export as CSV or JSON Lines, streamed page by page (keyset cursor) so memory stays constant.

CSV cells hold JSON columns as JSON strings; a text cell that a spreadsheet would run as a formula (starting with
``= + - @``, tab or carriage return) gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit.models import DecisionRow
from guard.audit.queries import AuditFilters, iter_decisions

__all__ = ["COLUMNS", "CONTENT_TYPES", "ExportFormat", "csv_cell", "export_chunks"]

ExportFormat = Literal["csv", "jsonl"]
COLUMNS = [column.key for column in DecisionRow.__table__.columns]
# Litestar adds "; charset=utf-8" to text/* types itself.
CONTENT_TYPES: dict[str, str] = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_JSON = msgspec.json.Encoder()


def csv_cell(value: Any) -> str | int | float:
    """One CSV cell: JSON for lists and dicts, ISO 8601 for times, empty for NULL, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    text = value if isinstance(value, str) else _JSON.encode(value).decode("utf-8")
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(rows: list[dict[str, Any]], *, header: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(COLUMNS)
    writer.writerows([csv_cell(row[name]) for name in COLUMNS] for row in rows)
    return buffer.getvalue().encode("utf-8")


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(_JSON.encode(row) + b"\n" for row in rows)


async def export_chunks(
    engine: AsyncEngine, filters: AuditFilters, fmt: ExportFormat, *, chunk: int = 500
) -> AsyncIterator[tuple[int, bytes]]:
    """``(rows, bytes)`` per page of matching decisions, newest first; a CSV starts with its header row."""
    if fmt == "csv":
        yield 0, _csv([], header=True)
    async for rows in iter_decisions(engine, filters, chunk=chunk):
        yield len(rows), _csv(rows, header=False) if fmt == "csv" else _jsonl(rows)
