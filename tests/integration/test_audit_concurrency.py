"""Verify and purge at the same moment (one snapshot per verify), and purge cutting by ``seq`` exactly.

The barrier is deterministic: a cursor hook on the verifier's engine stops the verifier just before its first read
of the decision rows (after it has read the purge cuts), runs a whole purge to its commit on a second engine in
another thread, and only then lets the verifier go on. Without one snapshot the verifier sees the old cuts and the
new rows and reports a false break.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit import AuditRecord, AuditWriter, create_engine
from guard.audit.models import DecisionRow
from guard.audit.retention import purge
from guard.audit.verify import verify_audit

pytestmark = pytest.mark.integration

_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _record(n: int, day: int) -> AuditRecord:
    return AuditRecord(
        decision_id=f"00000000-0000-0000-0000-{n:012d}",
        created_at=_T0 + timedelta(days=day, seconds=n),
        route="/v1/scan",
        outcome="ok",
        http_status=200,
        decision="allow",
        input_redacted=[{"role": "user", "content": f"row {n}"}],
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _rows(engine: AsyncEngine) -> list[tuple[str, int, datetime]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            select(DecisionRow.chain_id, DecisionRow.seq, DecisionRow.created_at).order_by(
                DecisionRow.chain_id, DecisionRow.seq
            )
        )
        return [(r.chain_id, int(r.seq), r.created_at) for r in result]


class _PurgeBarrier:
    """Before the verifier's first statement on ``audit_decisions``: run a purge to its commit elsewhere."""

    def __init__(self, database_url: str, before: datetime) -> None:
        self._url = database_url
        self._before = before
        self.fired = False
        self.error: BaseException | None = None

    def _purge(self) -> None:
        async def run() -> None:
            other = create_engine(self._url)
            try:
                await purge(other, self._before, actor="test:barrier")
            finally:
                await other.dispose()

        try:
            asyncio.run(run())
        except BaseException as exc:  # handed to the test, which fails on it
            self.error = exc

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.fired or "FROM audit_decisions" not in statement:
            return
        self.fired = True
        thread = threading.Thread(target=self._purge)
        thread.start()
        thread.join(timeout=60)  # blocks the verifier (and its loop) until the purge has committed
        assert not thread.is_alive(), "the purge did not finish while the verifier waited"


async def test_verify_during_a_purge_reports_no_break(database_url: str, engine: AsyncEngine) -> None:
    writers = [AuditWriter(engine) for _ in range(2)]
    for day in range(6):
        await asyncio.gather(*(w.write(_record(100 * c + day, day)) for c, w in enumerate(writers)))
    barrier = _PurgeBarrier(database_url, _T0 + timedelta(days=3))
    event.listen(engine.sync_engine, "before_cursor_execute", barrier)
    try:
        report = await verify_audit(engine)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", barrier)
    assert barrier.fired
    assert barrier.error is None, barrier.error
    broken = {c.chain_id: c.broken for c in report.chains if c.broken}
    assert report.ok, broken
    # The verifier saw the log as it was before the purge (one snapshot) ...
    assert {c.chain_id: (c.rows, c.cut) for c in report.chains} == {w.chain_id: (6, None) for w in writers}
    # ... and a verify after it sees the cut and the rest.
    after = await verify_audit(engine)
    assert after.ok
    assert {c.chain_id: (c.rows, c.cut.seq if c.cut else None) for c in after.chains} == {
        w.chain_id: (3, 3) for w in writers
    }


async def test_the_purge_cut_removes_exactly_the_rows_before_it(engine: AsyncEngine) -> None:
    """Rows are numbered when written, not when created: a row created after the date may come before rows created
    before it. The cut stops at the first row created on or after the date, so it never takes such a row."""
    writer = AuditWriter(engine)
    days = [0, 1, 5, 2, 6, 7]  # seq 3 was created after the date, seq 4 before it
    for n, day in enumerate(days):
        await writer.write(_record(n, day))
    before = _T0 + timedelta(days=3)
    result = await purge(engine, before, actor="test:purge")
    assert {c: cut.seq for c, cut in result.cuts.items()} == {writer.chain_id: 2}
    assert result.deleted == {writer.chain_id: 2}
    left = await _rows(engine)
    assert [seq for _, seq, _ in left] == [3, 4, 5, 6]
    assert min(created for _, seq, created in left if seq == 3) >= before
    report = await verify_audit(engine)
    assert report.ok
    (chain,) = report.chains
    assert (chain.rows, chain.cut.seq if chain.cut else None) == (4, 2)
    # A second purge at the same date cuts nothing more: seq 3 still stands in the way.
    again = await purge(engine, before, actor="test:purge")
    assert again.deleted == {}
    assert [seq for _, seq, _ in await _rows(engine)] == [3, 4, 5, 6]
