"""Read the audit table straight from the database (not through the API)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def audit_rows(url: str) -> list[dict[str, Any]]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT * FROM audit_decisions"))
        rows = [dict(row._mapping) for row in result]
    await engine.dispose()
    for row in rows:
        for key, value in row.items():
            if isinstance(value, str) and value[:1] in "[{":  # JSON columns come back as text on SQLite
                with contextlib.suppress(ValueError):  # a text column that merely starts with "[" stays text
                    row[key] = json.loads(value)
    return rows


async def raw_dump(url: str) -> str:
    """Everything the audit table holds, as text, for searching for raw PII."""
    return json.dumps(await audit_rows(url), default=str, ensure_ascii=False)
