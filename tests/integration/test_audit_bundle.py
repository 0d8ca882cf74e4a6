"""Audit bundles on a real SQLite file and PostgreSQL: export, offline verification with only the first public key
(through two signing-key rotations, a purge and an erasure), and every kind of tampering named by the record."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine

import guard.audit.bundle_verify as bundle_verify_module
from guard.audit import AuditRecord, AuditWriter, SubjectHasher, create_engine, load_keyring
from guard.audit.admin_events import list_admin_events
from guard.audit.bundle import BundleError, export_bundle
from guard.audit.bundle_verify import (
    GENESIS_HASH,
    ROTATE_ACTION,
    canonical,
    event_hash,
    rotation_statement,
    verify_bundle,
)
from guard.audit.checkpoint import load_or_create_signing_key, public_key_hex, rotate_signing_key
from guard.audit.retention import erase_subject, purge
from guard.audit.verify import verify_audit
from guard.cli import main

pytestmark = pytest.mark.integration

_T0 = datetime(2026, 1, 1, tzinfo=UTC)
_MARIA = SubjectHasher(bytes(range(32))).digest("EMAIL_ADDRESS", "maria.lopez@example.com")


def _record(n: int, day: int, *, subject: bool = False) -> AuditRecord:
    return AuditRecord(
        decision_id=f"00000000-0000-0000-0000-{n:012d}",
        created_at=_T0 + timedelta(days=day, microseconds=654321 + n),
        route="/v1/chat/completions",
        outcome="ok",
        http_status=200,
        decision="redact" if subject else "allow",
        policy_name="default",
        policy_version="3",
        policy_sha256="ab" * 32,
        engine="gemma2",
        model="gemma-2-2b-it",
        findings=[{"check": "pii", "type": "EMAIL_ADDRESS", "score": 0.85, "start": 3, "end": 20}] if subject else [],
        scores=[{"stage": "input", "check": "toxicity", "scores": {"toxicity": 0.000123, "threat": 1.0}}],
        input_redacted=[{"role": "user", "content": f"Nr. {n} <EMAIL_ADDRESS> ✓"}],
        output_redacted="Done.",
        latency_ms={"total": 12.345678901234, "big": 1e16},
        subject_hmacs=[_MARIA] if subject else [],
        prompt_hmac="cd" * 32,
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


class Bundle:
    """An exported bundle, the first public key (out of band) and the writers' chain ids."""

    def __init__(self, directory: Path, first_key: str, chains: list[str], keys: list[str]) -> None:
        self.directory = directory
        self.first_key = first_key
        self.chains = chains
        self.keys = keys

    def copy(self, target: Path) -> Path:
        shutil.copytree(self.directory, target)
        return target


async def _make_bundle(engine: AsyncEngine, tmp_path: Path) -> Bundle:
    key_path = tmp_path / "keys" / "audit-signing.key"
    first = public_key_hex(load_or_create_signing_key(key_path))
    writers = [AuditWriter(engine) for _ in range(2)]
    for day in range(8):
        await asyncio.gather(
            *(w.write(_record(100 * c + day, day, subject=day in (3, 5))) for c, w in enumerate(writers))
        )
    await purge(engine, _T0 + timedelta(days=1), actor="test:purge")  # seq 1 of each chain goes
    await erase_subject(engine, [_MARIA], actor="test:erase")
    _, second = await rotate_signing_key(engine, key_path, actor="test:rotate")
    _, third = await rotate_signing_key(engine, key_path, actor="test:rotate")
    assert (await verify_audit(engine)).ok
    directory = tmp_path / "bundle"
    summary = await export_bundle(
        engine,
        directory,
        load_or_create_signing_key(key_path),
        since=_T0 + timedelta(days=2),
        until=_T0 + timedelta(days=7),
    )
    assert (summary.records, summary.chains, summary.public_key) == (10, 2, third)
    return Bundle(directory, first, [w.chain_id for w in writers], [first, second, third])


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")


def _edit_records(directory: Path, change: Callable[[list[dict[str, Any]]], object]) -> None:
    records = _lines(directory / "records.jsonl")
    change(records)
    _write_lines(directory / "records.jsonl", records)


def _sign(directory: Path, key: Ed25519PrivateKey, change: Callable[[dict[str, Any]], None] | None = None) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest.pop("signature")
    if change:
        change(manifest)
    manifest["public_key"] = public_key_hex(key)
    manifest["signature"] = base64.b64encode(key.sign(canonical(manifest))).decode()
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _problems(bundle: Bundle, directory: Path) -> list[str]:
    report = verify_bundle(directory, bundle.first_key)
    assert not report.ok
    return report.problems


def _named(problems: list[str], decision_id: str, reason: str) -> bool:
    return any(decision_id in p and reason in p for p in problems)


async def test_a_bundle_verifies_offline_with_only_the_first_key_and_every_tampering_is_named(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    bundle = await _make_bundle(engine, tmp_path)
    report = verify_bundle(bundle.directory, bundle.first_key)
    assert report.ok, report.problems
    assert report.key_chain == bundle.keys
    records = _lines(bundle.directory / "records.jsonl")
    assert [(r["chain_id"], r["seq"]) for r in records] == [(c, s) for c in sorted(bundle.chains) for s in range(3, 8)]
    assert sum(r["erased_at"] is not None for r in records) == 4
    assert all("maria" not in json.dumps(r).lower() for r in records)
    a, b, c = records[0]["decision_id"], records[2]["decision_id"], records[4]["decision_id"]
    erased = next(r["decision_id"] for r in records if r["erased_at"] is not None)

    changed = bundle.copy(tmp_path / "changed")
    _edit_records(changed, lambda rs: rs[2]["input_redacted"][0].update(content="something else"))
    assert _named(_problems(bundle, changed), b, "content does not match its digest")

    header = bundle.copy(tmp_path / "header")
    _edit_records(header, lambda rs: rs[2].update(decision="allow", policy_version="4"))
    assert _named(_problems(bundle, header), b, "header does not match its row hash")

    erased_edit = bundle.copy(tmp_path / "erased")
    _edit_records(erased_edit, lambda rs: next(r for r in rs if r["decision_id"] == erased)["findings"].clear())
    assert _named(_problems(bundle, erased_edit), erased, "erased record differs")

    deleted = bundle.copy(tmp_path / "deleted")
    _edit_records(deleted, lambda rs: rs.pop(2))
    assert _named(_problems(bundle, deleted), records[3]["decision_id"], "seq 5 missing before it")

    truncated = bundle.copy(tmp_path / "truncated")
    _edit_records(truncated, lambda rs: rs.pop(4))
    assert _named(_problems(bundle, truncated), c, "not the manifest's head")

    reordered = bundle.copy(tmp_path / "reordered")
    _edit_records(reordered, lambda rs: rs.insert(0, rs.pop(1)))
    assert _named(_problems(bundle, reordered), a, "out of order")

    def add(rs: list[dict[str, Any]]) -> None:
        extra = dict(rs[4], decision_id="00000000-0000-0000-0000-999999999999", seq=8, prev_hash=rs[4]["row_hash"])
        extra["row_hash"] = bundle_verify_module.header_hash(extra["prev_hash"], extra)  # a well-formed new link
        rs.insert(5, extra)

    added = bundle.copy(tmp_path / "added")
    _edit_records(added, add)
    assert _named(_problems(bundle, added), "999999999999", "after the manifest's head")

    foreign = bundle.copy(tmp_path / "foreign")
    _edit_records(foreign, lambda rs: rs.append(dict(rs[0], chain_id="another-chain", decision_id="x-added")))
    assert _named(_problems(bundle, foreign), "x-added", "its chain is not in the manifest")

    altered = bundle.copy(tmp_path / "altered")
    manifest = json.loads((altered / "manifest.json").read_text())
    manifest["chains"][records[0]["chain_id"]]["rows"] = 4
    (altered / "manifest.json").write_text(json.dumps(manifest))
    assert any("manifest: its signature does not match" in p for p in _problems(bundle, altered))

    # A consistent forgery (records edited, manifest re-made) signed by a key outside the chain ...
    resigned = bundle.copy(tmp_path / "resigned")
    _edit_records(resigned, lambda rs: rs.pop(4))
    _sign(resigned, Ed25519PrivateKey.generate())
    assert any("a key not in the signed key chain" in p for p in _problems(bundle, resigned))
    # ... or by a retired key ...
    retired = bundle.copy(tmp_path / "retired")
    old = load_or_create_signing_key(tmp_path / "keys" / f"audit-signing.key.retired-{bundle.keys[0][:16]}")
    _sign(retired, old)
    assert any("a retired key of the signed key chain" in p for p in _problems(bundle, retired))
    # ... or by a key the forger hands over to itself in a rotation event it cannot sign with the key in force.
    forged = bundle.copy(tmp_path / "forged")
    mine = Ed25519PrivateKey.generate()
    events = _lines(forged / "admin_events.jsonl")
    details = {
        "old_public_key": bundle.keys[-1],
        "new_public_key": public_key_hex(mine),
        "signature": base64.b64encode(mine.sign(rotation_statement(bundle.keys[-1], public_key_hex(mine)))).decode(),
    }
    event = {"created_at": _T0.isoformat(), "actor": "x", "action": ROTATE_ACTION, "subject": None, "details": details}
    prev = events[-1]["row_hash"] if events else GENESIS_HASH
    events.append({**event, "id": 999, "prev_hash": prev, "row_hash": event_hash(prev, event)})
    _write_lines(forged / "admin_events.jsonl", events)
    _sign(forged, mine, lambda m: m["admin_events"].update(count=len(events), head_hash=events[-1]["row_hash"]))
    problems = _problems(bundle, forged)
    assert any("admin event 999" in p and "not signed by the key in force" in p for p in problems)

    assert not verify_bundle(bundle.directory, public_key_hex(Ed25519PrivateKey.generate())).ok
    assert verify_bundle(bundle.directory, bundle.first_key).ok  # the original is untouched

    with pytest.raises(BundleError, match="not empty"):
        await export_bundle(engine, bundle.directory, Ed25519PrivateKey.generate())


def _standalone(script: Path, directory: Path, key: str) -> subprocess.CompletedProcess[str]:
    """The script run on its own, with every import outside the standard library and ``cryptography`` refused."""
    guard = (
        "import runpy, sys\n"
        "allowed = set(sys.stdlib_module_names) | {'cryptography', '_cffi_backend', 'cffi'}\n"
        "class Only:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] not in allowed:\n"
        "            raise ImportError('not allowed: ' + name)\n"
        "sys.meta_path.insert(0, Only())\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    return subprocess.run(
        [sys.executable, "-I", "-c", guard, str(script), str(directory), "--public-key", key],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_cli_exports_and_the_standalone_script_verifies(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fill() -> None:
        engine = create_engine(database_url)
        writer = AuditWriter(engine)
        for day in range(4):
            await writer.write(_record(day, day))
        await engine.dispose()

    asyncio.run(fill())
    monkeypatch.setenv("GUARD_DATABASE_URL", database_url)
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    first = public_key_hex(load_or_create_signing_key(tmp_path / "home" / "audit-signing.key"))
    rotated = runner.invoke(main, ["audit", "rotate-signing-key", "--yes"])
    assert rotated.exit_code == 0, rotated.output
    directory = tmp_path / "bundle"
    made = runner.invoke(main, ["audit", "export", "--bundle", str(directory), "--since", "2026-01-02"])
    assert made.exit_code == 0, made.output
    assert "bundle of 3 records" in made.output
    refused = runner.invoke(main, ["audit", "export", "--bundle", str(tmp_path / "b2"), "--decision", "block"])
    assert refused.exit_code != 0
    ok = runner.invoke(main, ["audit", "verify", "--bundle", str(directory), "--public-key", first])
    assert ok.exit_code == 0, ok.output
    assert "bundle verified" in ok.output
    script = tmp_path / "auditor" / "verify_bundle.py"
    script.parent.mkdir()
    shutil.copy(bundle_verify_module.__file__, script)
    alone = _standalone(script, directory, first)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert "bundle verified" in alone.stdout
    records = _lines(directory / "records.jsonl")
    records[0]["http_status"] = 500
    _write_lines(directory / "records.jsonl", records)
    broken = _standalone(script, directory, first)
    assert broken.returncode == 1
    assert f"BROKEN record {records[0]['decision_id']}" in broken.stdout
    cli_broken = runner.invoke(main, ["audit", "verify", "--bundle", str(directory), "--public-key", first])
    assert cli_broken.exit_code == 1
    assert records[0]["decision_id"] in cli_broken.output


def test_hmac_key_rotation_new_digests_use_the_newest_key_and_lookups_find_both(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    key_file = home / "audit-hmac.key"
    monkeypatch.setenv("GUARD_DATABASE_URL", database_url)
    monkeypatch.setenv("GUARD_HOME", str(home))
    monkeypatch.delenv("GUARD_AUDIT_HMAC_KEY", raising=False)
    before = SubjectHasher(load_keyring(key_file))
    runner = CliRunner()
    rotated = runner.invoke(main, ["audit", "rotate-hmac-key"])
    assert rotated.exit_code == 0, rotated.output
    after = SubjectHasher(load_keyring(key_file))
    assert (before.key_id, after.key_id) == ("k1", "k2")
    assert key_file.stat().st_mode & 0o777 == 0o600
    email = "maria.lopez@example.com"
    old, new = before.digest("EMAIL_ADDRESS", email), after.digest("EMAIL_ADDRESS", email)
    assert old != new
    assert after.digests("EMAIL_ADDRESS", email) == [old, new]

    async def fill() -> list[str]:
        engine = create_engine(database_url)
        writer = AuditWriter(engine)
        for n, digest in enumerate((old, new)):
            await writer.write(AuditRecord(**{**_fields(_record(n, n)), "subject_hmacs": [digest]}))
        events = [e.action for e in await list_admin_events(engine)]
        await engine.dispose()
        return events

    assert "audit.hmac_key_rotate" in asyncio.run(fill())
    found = runner.invoke(main, ["audit", "subject", "--value", email])
    assert found.exit_code == 0, found.output
    assert "2 records" in found.output


def _fields(record: AuditRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__struct_fields__}
