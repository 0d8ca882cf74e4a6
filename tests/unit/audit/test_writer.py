from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit import AuditRecord, AuditUnavailable, AuditWriter, create_engine
from guard.audit.chain import GENESIS_HASH, canonical, clean, content_digest, header_hash
from guard.audit.migrate import upgrade
from guard.audit.verify import verify_audit
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.unit

_T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _record(n: int, text: str = "ok") -> AuditRecord:
    return AuditRecord(
        decision_id=f"00000000-0000-0000-0000-{n:012d}",
        created_at=_T0 + timedelta(milliseconds=n),
        route="/v1/scan",
        outcome="ok",
        http_status=200,
        decision="allow",
        input_redacted=[{"role": "input", "content": text}],
        latency_ms={"total": 1.5 + n / 7, "audit": 2.0},
    )


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


class _Outage:
    """Fault injection: while ``down``, every INSERT into the audit table fails like a lost database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.down = False
        event.listen(engine.sync_engine, "before_cursor_execute", self._check)

    def _check(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.down and statement.startswith("INSERT INTO audit_decisions"):
            raise OperationalError(statement, None, Exception("database is gone"))


@pytest.fixture
def outage(engine: AsyncEngine) -> Iterator[_Outage]:
    return _Outage(engine)


def _by_seq(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["seq"])


def test_clean_replaces_what_databases_reject() -> None:
    assert clean({"a\x00": ["x\ud800y", 3]}) == {"a\ufffd": ["x\ufffdy", 3]}


def test_canonical_form_is_independent_of_key_order_and_integral_floats() -> None:
    assert canonical({"b": 5.0, "a": [1e16, 0.25]}) == canonical({"a": [10**16, 0.25], "b": 5})
    assert canonical({"a": 0.1}) != canonical({"a": 0.2})
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical({"a": float("nan")})


def test_row_hash_covers_the_header_and_the_content_only_through_its_digest() -> None:
    row = {"decision_id": "d", "created_at": _T0, "decision": "allow", "input_redacted": [{"content": "x"}]}
    digest = content_digest(row)
    sealed = {**row, "content_digest": digest}
    base = header_hash(GENESIS_HASH, sealed)
    assert header_hash(GENESIS_HASH, {**sealed, "input_redacted": []}) == base  # erasure keeps the hash
    assert header_hash(GENESIS_HASH, {**sealed, "decision": "block"}) != base
    assert content_digest({**row, "input_redacted": [{"content": "y"}]}) != digest


async def test_concurrent_writes_are_group_committed_in_one_contiguous_chain(url: str, engine: AsyncEngine) -> None:
    writer = AuditWriter(engine)
    await asyncio.gather(*(writer.write(_record(n, "nul \x00 and lone \udc80")) for n in range(300)))
    rows = _by_seq(await audit_rows(url))
    assert [r["seq"] for r in rows] == list(range(1, 301))
    assert {r["chain_id"] for r in rows} == {writer.chain_id}
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert all(b["prev_hash"] == a["row_hash"] for a, b in itertools.pairwise(rows))
    assert rows[0]["input_redacted"][0]["content"] == "nul \ufffd and lone \ufffd"
    assert writer.stats.rows == 300
    assert writer.stats.batches < 300  # callers shared commits
    report = await verify_audit(engine)
    assert report.ok
    assert [c.rows for c in report.chains] == [300]


async def test_a_failed_commit_fails_every_waiter_and_the_chain_goes_on_after_recovery(
    url: str, engine: AsyncEngine, outage: _Outage
) -> None:
    writer = AuditWriter(engine)
    await asyncio.gather(*(writer.write(_record(n)) for n in range(3)))
    outage.down = True
    results = await asyncio.gather(*(writer.write(_record(n)) for n in range(3, 23)), return_exceptions=True)
    assert len(results) == 20
    assert all(isinstance(r, AuditUnavailable) for r in results)
    outage.down = False
    await asyncio.gather(*(writer.write(_record(n)) for n in range(23, 28)))
    rows = _by_seq(await audit_rows(url))
    assert [r["decision_id"][-2:] for r in rows] == ["00", "01", "02", "23", "24", "25", "26", "27"]
    assert [r["seq"] for r in rows] == list(range(1, 9))
    assert (await verify_audit(engine)).ok


async def test_the_head_is_reread_after_a_failure(url: str, engine: AsyncEngine, outage: _Outage) -> None:
    """A commit that failed may still have landed: the next batch continues from the database, not from memory."""
    writer = AuditWriter(engine)
    await writer.write(_record(1))
    twin = AuditWriter(engine, chain_id=writer.chain_id)  # stands in for the batch whose commit result was lost
    await twin.write(_record(2))
    outage.down = True
    with pytest.raises(AuditUnavailable):
        await writer.write(_record(3))
    outage.down = False
    await writer.write(_record(4))
    assert [r["seq"] for r in _by_seq(await audit_rows(url))] == [1, 2, 3]
    assert (await verify_audit(engine)).ok


async def test_a_full_queue_is_refused_at_once(engine: AsyncEngine) -> None:
    writer = AuditWriter(engine, max_queue=2)
    results = await asyncio.gather(*(writer.write(_record(n)) for n in range(5)), return_exceptions=True)
    assert results[:2] == [None, None]
    assert all(isinstance(r, AuditUnavailable) and "full" in str(r) for r in results[2:])


async def test_aclose_commits_what_is_queued_then_refuses(url: str, engine: AsyncEngine) -> None:
    writer = AuditWriter(engine, max_batch=8)
    tasks = [asyncio.ensure_future(writer.write(_record(n))) for n in range(50)]
    await asyncio.sleep(0)  # every task has queued its row
    await writer.aclose()
    await asyncio.gather(*tasks)
    assert len(await audit_rows(url)) == 50
    with pytest.raises(AuditUnavailable):
        await writer.write(_record(99))


def test_a_writer_built_before_the_loop_runs_binds_to_it(url: str) -> None:
    engine = create_engine(url)
    writer = AuditWriter(engine)

    async def go() -> None:
        await writer.write(_record(1))
        await writer.aclose()
        await engine.dispose()

    asyncio.run(go())
    assert [r["seq"] for r in asyncio.run(audit_rows(url))] == [1]
