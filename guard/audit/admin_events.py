"""Administrative changes (keys created, revoked), hash-chained in ``admin_events`` so edits and deletions show.

Each row's ``row_hash = sha256(prev_hash || canonical row)``, the first row's ``prev_hash`` is the genesis hash.
There is one chain for the whole database: ``prev_hash`` is unique, so when two writers race for the same head
one insert fails and is retried on the new head. The event is written in the caller's transaction, so a key and
the event that records it are committed together or not at all.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guard.audit.chain import GENESIS_HASH, clean, event_hash
from guard.audit.models import AdminEventRow

__all__ = [
    "REVIEWER_SIGN_IN",
    "REVIEWER_SIGN_OUT",
    "AdminEvent",
    "BrokenLink",
    "list_admin_events",
    "process_actor",
    "record_admin_event",
    "verify_admin_events",
    "verify_admin_events_on",
]

REVIEWER_SIGN_IN = "reviewer.sign_in"
"""A reviewer-page sign-in attempt, whatever its outcome (details: outcome, the address's HMAC; never the key)."""
REVIEWER_SIGN_OUT = "reviewer.sign_out"


@dataclass(frozen=True)
class AdminEvent:
    id: int
    created_at: datetime
    actor: str
    action: str
    subject: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class BrokenLink:
    """The first event whose link or content does not match the chain."""

    id: int
    reason: str


def process_actor() -> str:
    """Who made a change outside the HTTP API (the CLI has no API key): the operating-system user."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (e.g. an arbitrary container uid)
        return "os:unknown"


def _content(
    created_at: datetime, actor: str, action: str, subject: str | None, details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "created_at": created_at.astimezone(UTC).isoformat(),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
    }


async def record_admin_event(
    connection: AsyncConnection, *, actor: str, action: str, subject: str | None, details: dict[str, Any]
) -> None:
    """Append an event in ``connection``'s transaction (commit it with the change it records)."""
    last = (
        await connection.execute(select(AdminEventRow.row_hash).order_by(AdminEventRow.id.desc()).limit(1))
    ).scalar_one_or_none()
    prev = last or GENESIS_HASH
    created_at = datetime.now(UTC)
    actor, subject, details = clean(actor), clean(subject), clean(details)
    await connection.execute(
        insert(AdminEventRow).values(
            created_at=created_at,
            actor=actor,
            action=action,
            subject=subject,
            details=details,
            prev_hash=prev,
            row_hash=event_hash(prev, _content(created_at, actor, action, subject, details)),
        )
    )


async def list_admin_events(engine: AsyncEngine) -> list[AdminEvent]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(AdminEventRow).order_by(AdminEventRow.id))
        return [
            AdminEvent(
                id=row.id,
                created_at=row.created_at,
                actor=row.actor,
                action=row.action,
                subject=row.subject,
                details=row.details,
            )
            for row in rows
        ]


async def verify_admin_events(engine: AsyncEngine) -> tuple[int, BrokenLink | None]:
    """Walk the chain in insertion order: ``(events checked, first broken link or None)``."""
    async with engine.connect() as connection:
        return await verify_admin_events_on(connection)


async def verify_admin_events_on(connection: AsyncConnection) -> tuple[int, BrokenLink | None]:
    """:func:`verify_admin_events` inside the caller's transaction (the audit verifier's snapshot)."""
    expected = GENESIS_HASH
    count = 0
    rows = await connection.execute(select(AdminEventRow).order_by(AdminEventRow.id))
    for row in rows:
        count += 1
        if row.prev_hash != expected:
            return count, BrokenLink(row.id, "its prev_hash is not the previous event's hash (deleted or reordered)")
        content = _content(row.created_at, row.actor, row.action, row.subject, row.details)
        if event_hash(row.prev_hash, content) != row.row_hash:
            return count, BrokenLink(row.id, "its content does not match its hash (edited)")
        expected = row.row_hash
    return count, None
