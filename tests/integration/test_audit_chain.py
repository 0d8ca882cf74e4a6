"""Chain v2 on a real SQLite file and PostgreSQL: tamper detection, checkpoints, purge and subject erasure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit import AuditRecord, AuditWriter, SubjectHasher, create_engine
from guard.audit.admin_events import list_admin_events, verify_admin_events
from guard.audit.checkpoint import (
    InvalidCheckpoint,
    chain_heads,
    load_checkpoint,
    load_or_create_signing_key,
    make_checkpoint,
)
from guard.audit.models import DecisionRow
from guard.audit.retention import erase_subject, find_subject, purge
from guard.audit.verify import VerifyReport, verify_audit
from guard.cli import main
from guard.cli.audit_chain import subject_digests
from guard.store.api_keys import create_api_key
from tests.integration.conftest import AUTH
from tests.integration.dbdump import audit_rows, raw_dump

pytestmark = pytest.mark.integration

_T0 = datetime(2026, 1, 1, tzinfo=UTC)
_KEY = SubjectHasher(bytes(range(32)))
_MARIA = _KEY.digest("EMAIL_ADDRESS", "maria.lopez@example.com")


def _record(n: int, *, day: int = 0, subjects: list[str] | None = None) -> AuditRecord:
    return AuditRecord(
        decision_id=f"00000000-0000-0000-0000-{n:012d}",
        created_at=_T0 + timedelta(days=day, microseconds=123457 + n),
        route="/v1/chat/completions",
        outcome="ok",
        http_status=200,
        decision="redact" if subjects else "allow",
        policy_name="default",
        findings=[
            {
                "check": "pii",
                "type": "EMAIL_ADDRESS",
                "score": 0.85,
                "threshold": 0.5,
                "action": "redact",
                "start": 8,
                "end": 31,
                "stage": "input",
                "message_index": 0,
            }
        ]
        if subjects
        else [],
        scores=[
            {
                "stage": "input",
                "check": "toxicity",
                "message_index": 0,
                "scores": {"toxicity": 0.000123456789, "insult": 1e-07, "threat": 1.0},
            }
        ],
        input_redacted=[{"role": "user", "content": f"Schreib <EMAIL_ADDRESS> an — Nr. {n} ✓"}],
        output_redacted="Done.",
        latency_ms={"total": 12.345678901234, "pii": 5.0, "big": 1e16, "zero": 0.0},
        coverage=0.987654321,
        subject_hmacs=subjects or [],
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _fill(engine: AsyncEngine, chains: int = 2, rows: int = 6) -> list[AuditWriter]:
    """``chains`` writers (replicas) writing ``rows`` rows each, one per day, concurrently."""
    writers = [AuditWriter(engine) for _ in range(chains)]
    for day in range(rows):
        await asyncio.gather(
            *(
                w.write(_record(100 * c + day, day=day, subjects=[_MARIA] if day in (1, 4) else None))
                for c, w in enumerate(writers)
            )
        )
    return writers


async def _row(engine: AsyncEngine, chain_id: str, seq: int) -> Any:
    async with engine.connect() as connection:
        return (
            await connection.execute(
                select(DecisionRow).where(DecisionRow.chain_id == chain_id, DecisionRow.seq == seq)
            )
        ).one()


async def _sql(engine: AsyncEngine, statement: str, **params: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(statement), params)


def _broken(report: VerifyReport) -> dict[str, tuple[str | None, int, str]]:
    return {c.chain_id: (c.broken.decision_id, c.broken.seq, c.broken.reason) for c in report.chains if c.broken}


async def test_untouched_chains_verify_after_a_database_round_trip(engine: AsyncEngine) -> None:
    writers = await _fill(engine)
    report = await verify_audit(engine)
    assert report.ok, _broken(report)
    assert {c.chain_id: (c.rows, c.head_seq) for c in report.chains} == {w.chain_id: (6, 6) for w in writers}
    assert report.as_dict()["ok"] is True


async def test_editing_a_rows_decision_is_detected_at_that_row(engine: AsyncEngine) -> None:
    chain = (await _fill(engine))[0].chain_id
    target = await _row(engine, chain, 3)
    await _sql(engine, "UPDATE audit_decisions SET decision = 'block' WHERE decision_id = :d", d=target.decision_id)
    report = await verify_audit(engine)
    assert _broken(report) == {chain: (target.decision_id, 3, "header does not match its row hash (edited)")}


async def test_editing_content_is_detected_by_its_digest(engine: AsyncEngine) -> None:
    chain = (await _fill(engine))[1].chain_id
    target = await _row(engine, chain, 2)
    await _sql(
        engine, "UPDATE audit_decisions SET output_redacted = 'changed' WHERE decision_id = :d", d=target.decision_id
    )
    assert _broken(await verify_audit(engine))[chain][:2] == (target.decision_id, 2)


async def test_deleting_a_row_names_the_row_after_the_gap(engine: AsyncEngine) -> None:
    chain = (await _fill(engine))[0].chain_id
    gone, after = await _row(engine, chain, 4), await _row(engine, chain, 5)
    await _sql(engine, "DELETE FROM audit_decisions WHERE decision_id = :d", d=gone.decision_id)
    assert _broken(await verify_audit(engine)) == {
        chain: (after.decision_id, 5, "seq 4 missing before it (rows deleted)")
    }


async def test_swapping_two_rows_contents_is_detected(engine: AsyncEngine) -> None:
    chain = (await _fill(engine))[0].chain_id
    first, second = await _row(engine, chain, 2), await _row(engine, chain, 5)
    async with engine.begin() as connection:
        for row, other in ((first, second), (second, first)):
            await connection.execute(
                update(DecisionRow)
                .where(DecisionRow.decision_id == row.decision_id)
                .values(input_redacted=other.input_redacted)
            )
    assert _broken(await verify_audit(engine)) == {
        chain: (first.decision_id, 2, "content does not match its digest (edited or swapped)")
    }


async def test_swapping_two_rows_places_is_detected(engine: AsyncEngine) -> None:
    chain = (await _fill(engine))[0].chain_id
    first, second = await _row(engine, chain, 2), await _row(engine, chain, 5)
    await _sql(engine, "UPDATE audit_decisions SET seq = -1 WHERE decision_id = :d", d=first.decision_id)
    await _sql(engine, "UPDATE audit_decisions SET seq = 2 WHERE decision_id = :d", d=second.decision_id)
    await _sql(engine, "UPDATE audit_decisions SET seq = 5 WHERE decision_id = :d", d=first.decision_id)
    assert _broken(await verify_audit(engine)) == {
        chain: (second.decision_id, 2, "prev_hash does not link to the previous row (moved or replaced)")
    }


async def test_truncating_the_tail_is_detected_only_against_a_checkpoint(engine: AsyncEngine, tmp_path: Path) -> None:
    chain = (await _fill(engine))[1].chain_id
    key = load_or_create_signing_key(tmp_path / "signing.key")
    assert (tmp_path / "signing.key").stat().st_mode & 0o777 == 0o600
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(make_checkpoint(await chain_heads(engine), key)))
    checkpoint = load_checkpoint(path)
    assert (await verify_audit(engine, checkpoint)).ok
    head = await _row(engine, chain, 6)
    await _sql(engine, "DELETE FROM audit_decisions WHERE chain_id = :c AND seq >= 5", c=chain)
    assert (await verify_audit(engine)).ok  # a clean cut of the tail: nothing inside the chain shows it
    assert _broken(await verify_audit(engine, checkpoint)) == {
        chain: (head.decision_id, 6, "checkpointed head is gone: the chain ends at seq 4 (truncated)")
    }


async def test_a_forged_checkpoint_is_refused(engine: AsyncEngine, tmp_path: Path) -> None:
    await _fill(engine, chains=1, rows=2)
    document = make_checkpoint(await chain_heads(engine), load_or_create_signing_key(tmp_path / "k"))
    (only,) = document["heads"].values()
    only["seq"] = 1
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidCheckpoint, match="signature"):
        load_checkpoint(path)


async def test_purge_deletes_a_prefix_records_the_cut_and_verify_still_passes(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    writers = await _fill(engine)
    key = load_or_create_signing_key(tmp_path / "k")
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(make_checkpoint(await chain_heads(engine), key)))
    result = await purge(engine, _T0 + timedelta(days=3), actor="test:purge")
    cut_hashes = {w.chain_id: (await _row(engine, w.chain_id, 4)).prev_hash for w in writers}
    assert {c: (cut.seq, cut.row_hash) for c, cut in result.cuts.items()} == {c: (3, h) for c, h in cut_hashes.items()}
    assert result.deleted == {w.chain_id: 3 for w in writers}
    await writers[0].write(_record(999, day=9))  # the live writer goes on after the cut
    report = await verify_audit(engine, load_checkpoint(path))
    assert report.ok, _broken(report)
    assert {c.chain_id: (c.rows, c.cut.seq if c.cut else None) for c in report.chains} == {
        writers[0].chain_id: (4, 3),
        writers[1].chain_id: (3, 3),
    }
    (event,) = [e for e in await list_admin_events(engine) if e.action == "audit.purge"]
    assert event.details["chains"][writers[0].chain_id] == {
        "cut_seq": 3,
        "cut_hash": cut_hashes[writers[0].chain_id],
        "deleted": 3,
    }
    # Deleting the first row left after the cut is still caught.
    first = await _row(engine, writers[1].chain_id, 4)
    await _sql(engine, "DELETE FROM audit_decisions WHERE decision_id = :d", d=first.decision_id)
    assert _broken(await verify_audit(engine))[writers[1].chain_id][1:] == (5, "seq 4 missing before it (rows deleted)")


async def test_subject_erase_blanks_the_content_and_verify_still_passes(database_url: str, engine: AsyncEngine) -> None:
    await _fill(engine)
    digests = subject_digests(_KEY, "  Maria.Lopez@EXAMPLE.com ")
    found = await find_subject(engine, digests)
    assert len(found) == 4
    assert not any(r.erased for r in found)
    assert await find_subject(engine, subject_digests(_KEY, "someone.else@example.com")) == []
    erased = await erase_subject(engine, digests, actor="test:erase")
    assert sorted(erased) == sorted(r.decision_id for r in found)
    report = await verify_audit(engine)
    assert report.ok, _broken(report)
    assert sum(c.erased for c in report.chains) == 4
    rows = {r["decision_id"]: r for r in await audit_rows(database_url)}
    for decision_id in erased:
        row = rows[decision_id]
        assert row["input_redacted"] == []
        assert row["output_redacted"] is None
        assert row["subject_hmacs"] == []
        assert row["scores"] == []
        assert row["erased_at"] is not None
        assert row["findings"] == [
            {
                "check": "pii",
                "type": "EMAIL_ADDRESS",
                "score": 0.85,
                "threshold": 0.5,
                "action": "redact",
                "stage": "input",
                "message_index": 0,
                "start": 0,
                "end": 0,
            }
        ]
    assert _MARIA not in await raw_dump(database_url)
    (event,) = [e for e in await list_admin_events(engine) if e.action == "audit.erase"]
    assert event.details == {"count": 4, "decision_ids": erased}
    assert "maria" not in json.dumps(event.details).lower()
    assert (await verify_admin_events(engine))[1] is None
    assert await find_subject(engine, digests) == []


def test_the_cli_verifies_checkpoints_and_exits_1_on_a_break(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fill_and_cut() -> None:
        engine = create_engine(database_url)
        await _fill(engine, chains=1)
        await engine.dispose()

    asyncio.run(fill_and_cut())
    monkeypatch.setenv("GUARD_DATABASE_URL", database_url)
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    checkpoint = tmp_path / "checkpoint.json"
    made = runner.invoke(main, ["audit", "checkpoint", "--out", str(checkpoint)])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "home" / "audit-signing.key").is_file()
    ok = runner.invoke(main, ["audit", "verify", "--checkpoint", str(checkpoint)])
    assert ok.exit_code == 0, ok.output
    assert "audit log verified" in ok.output

    async def truncate() -> None:
        engine = create_engine(database_url)
        await _sql(engine, "DELETE FROM audit_decisions WHERE seq = 6")
        await engine.dispose()

    asyncio.run(truncate())
    broken = runner.invoke(main, ["audit", "verify", "--checkpoint", str(checkpoint)])
    assert broken.exit_code == 1
    assert "BROKEN at seq 6" in broken.output
    assert "truncated" in broken.output
    assert runner.invoke(main, ["audit", "purge", "--before", "2026-01-04", "--yes"]).exit_code == 0
    subject = runner.invoke(main, ["audit", "subject", "--value", "nobody@example.com"])
    assert subject.exit_code == 0
    assert "0 records" in subject.output


async def test_the_verify_endpoint_reports_the_chains_for_keys_without_a_tenant(
    client: AsyncTestClient[Any], database_url: str
) -> None:
    for text_ in ("hello", "mail maria.lopez@example.com"):
        assert (await client.post("/v1/scan", json={"text": text_}, headers=AUTH)).status_code == 200
    response = await client.get("/v1/audit/verify", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert [(c["rows"], c["head"]["seq"], c["broken"]) for c in body["chains"]] == [(2, 2, None)]
    engine = create_engine(database_url)
    try:
        tenant_key, _ = await create_api_key(engine, name="t", scopes=("audit:read",), tenant="acme")
        scan_key, _ = await create_api_key(engine, name="s", scopes=("scan",))
    finally:
        await engine.dispose()
    for key in (tenant_key, scan_key):
        denied = await client.get("/v1/audit/verify", headers={"Authorization": f"Bearer {key}"})
        assert denied.status_code == 403, denied.text
        assert denied.json()["request_id"]
