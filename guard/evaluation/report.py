"""The tables an evaluation produces: the CLI prints them with rich and writes them as JSON."""

from __future__ import annotations

import msgspec

__all__ = ["Report"]


class Report(msgspec.Struct, kw_only=True):
    """One table of an evaluation: ``rows`` line up with ``columns``; ``summary`` holds the headline figures."""

    title: str
    columns: list[str]
    rows: list[list[str | int | float]]
    summary: dict[str, float] = msgspec.field(default_factory=dict)
