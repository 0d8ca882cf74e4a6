"""``guard eval``: labelled datasets run through the real checks, scored per entity type / category.

Each dataset kind has its own module (``pii``, ``prohibited``); each returns :class:`Report` tables that the CLI
prints with rich and writes as JSON.
"""

from __future__ import annotations

import msgspec

__all__ = ["Report"]


class Report(msgspec.Struct, kw_only=True):
    """One table of an evaluation: ``rows`` line up with ``columns``; ``summary`` holds the headline figures."""

    title: str
    columns: list[str]
    rows: list[list[str | int | float]]
    summary: dict[str, float] = msgspec.field(default_factory=dict)
