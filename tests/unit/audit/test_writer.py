from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from guard.audit import AuditRecord, AuditWriter, create_engine
from guard.audit.migrate import upgrade
from guard.audit.writer import GENESIS_HASH, clean, row_hash
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.unit


def _record(n: int, text: str = "ok") -> AuditRecord:
    return AuditRecord(
        decision_id=f"00000000-0000-0000-0000-{n:012d}",
        created_at=datetime(2026, 11, 23, 12, 0, n, tzinfo=UTC),
        route="/v1/scan",
        outcome="ok",
        http_status=200,
        decision="allow",
        input_redacted=[{"role": "input", "content": text}],
    )


def test_clean_replaces_what_databases_reject() -> None:
    assert clean({"a\x00": ["x\ud800y", 3]}) == {"a\ufffd": ["x\ufffdy", 3]}


async def test_rows_are_chained_and_unstorable_text_is_cleaned(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    writer = AuditWriter(engine)
    await writer.write(_record(1, "nul \x00 and lone \udc80"))
    await writer.write(_record(2))
    await engine.dispose()
    rows = sorted(await audit_rows(url), key=lambda r: r["decision_id"])
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert rows[1]["prev_hash"] == rows[0]["row_hash"]
    assert {r["chain_id"] for r in rows} == {writer.chain_id}
    assert rows[0]["input_redacted"][0]["content"] == "nul \ufffd and lone \ufffd"
    assert rows[0]["row_hash"] != row_hash(GENESIS_HASH, {"tampered": True})
