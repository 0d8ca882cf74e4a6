"""The audit writer's failure state (issue 21, disk-full): named, reported until a commit succeeds, probed."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit import AuditRecord, AuditUnavailable, AuditWriter, create_engine
from guard.audit.admin_events import list_admin_events, verify_admin_events
from guard.audit.migrate import upgrade
from guard.audit.writer import describe_failure
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.unit


def _record(n: int) -> AuditRecord:
    return AuditRecord(
        decision_id=f"00000000-0000-0000-0000-{n:012d}",
        created_at=datetime.now(UTC),
        route="/v1/scan",
        outcome="ok",
        http_status=200,
        decision="allow",
        input_redacted=[{"role": "input", "content": "ok"}],
        latency_ms={"total": 1.0},
    )


class _FullDisk:
    """Fault injection: while ``full``, every INSERT fails as SQLite's does on a full file system (SQLITE_FULL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.full = False
        event.listen(engine.sync_engine, "before_cursor_execute", self._check)

    def _check(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.full and statement.startswith("INSERT"):
            raise OperationalError(statement, None, sqlite3.OperationalError("database or disk is full"))


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    return url


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url)
    yield engine
    await engine.dispose()


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (OperationalError("INSERT ...", None, sqlite3.OperationalError("database or disk is full")), "disk full"),
        (OperationalError("COMMIT", None, sqlite3.OperationalError("disk I/O error")), "disk I/O error"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk full"),
        (RuntimeError("could not extend file base/16384/2619: No space left on device"), "disk full"),
        (
            OperationalError("SELECT 1", None, sqlite3.OperationalError("unable to open database file")),
            "OperationalError",
        ),
    ],
)
def test_a_failure_is_named_by_cause_never_by_its_message(exc: BaseException, reason: str) -> None:
    assert describe_failure(exc) == reason


async def test_a_full_disk_is_reported_until_a_commit_succeeds_and_the_probe_records_the_outage(
    engine: AsyncEngine, url: str
) -> None:
    disk = _FullDisk(engine)
    writer = AuditWriter(engine)
    await writer.write(_record(1))
    assert writer.failure is None
    await writer.probe()  # nothing failed: the probe writes nothing
    disk.full = True
    for n in (2, 3):
        with pytest.raises(AuditUnavailable):
            await writer.write(_record(n))
    failure = writer.failure
    assert failure is not None
    assert (failure.reason, failure.commits) == ("disk full", 2)
    with pytest.raises(OperationalError):
        await writer.probe()  # a commit, and the disk still takes none
    assert writer.failure is not None
    assert (writer.failure.since, writer.failure.commits) == (failure.since, 3)

    disk.full = False
    await writer.probe()
    assert writer.failure is None
    events = await list_admin_events(engine)
    assert [(e.action, e.subject) for e in events] == [("audit_recovered", "disk full")]
    assert events[0].details == {"chain_id": writer.chain_id, "since": failure.since.isoformat(), "failed_commits": 3}
    assert await verify_admin_events(engine) == (1, None)
    await writer.write(_record(4))
    rows = await audit_rows(url)
    assert sorted(r["decision_id"][-1] for r in rows) == ["1", "4"]


async def test_a_successful_commit_clears_the_failure_without_a_probe(engine: AsyncEngine) -> None:
    disk = _FullDisk(engine)
    writer = AuditWriter(engine)
    disk.full = True
    with pytest.raises(AuditUnavailable):
        await writer.write(_record(1))
    assert writer.failure is not None
    disk.full = False
    await writer.write(_record(2))  # writes are never refused for an earlier failure
    assert writer.failure is None
    assert await list_admin_events(engine) == []
