"""Stored decisions for the shadow and replay reports: read back from the audit log, and counted by group (a count
and a few example decision ids each)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from guard.audit import create_engine
from guard.audit.replay_queries import answered_decisions

__all__ = ["ARROW", "EXAMPLES", "add", "blocking_types", "new_group", "read_decisions"]

EXAMPLES = 5
"""Example decision ids kept per group."""
ARROW = "->"
"""Joins a decision pair: ``allow->block``."""


def new_group() -> dict[str, Any]:
    """An empty group: ``{"count": 0, "decision_ids": []}``."""
    return {"count": 0, "decision_ids": []}


def add(group: dict[str, Any], decision_id: str) -> None:
    """Count ``decision_id`` in ``group``, keeping it as an example while there are fewer than :data:`EXAMPLES`."""
    group["count"] += 1
    if len(group["decision_ids"]) < EXAMPLES:
        group["decision_ids"].append(decision_id)


def blocking_types(findings: list[dict[str, Any]]) -> list[str]:
    """The finding types (prohibited categories, toxicity labels, entities...) that blocked, each once."""
    return sorted({f["type"] for f in findings if f["action"] == "block"})


async def read_decisions(
    database_url: str, *, since: datetime | None, until: datetime | None, policy: str | None, with_shadow: bool
) -> list[dict[str, Any]]:
    """Every answered decision in ``[since, until)`` (under ``policy`` if given), oldest first; ``with_shadow`` keeps
    those that carry a shadow evaluation."""
    engine = create_engine(database_url)
    try:
        return await answered_decisions(engine, since=since, until=until, policy=policy, with_shadow=with_shadow)
    finally:
        await engine.dispose()
