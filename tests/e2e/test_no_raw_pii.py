"""Nothing raw (issue 7, must-show 4): a seeded Faker corpus of personal data goes through chat and scan on the real
server; afterwards no raw value — nor its NFKC form, nor (for ≥ 8 digits) its digits-only form on token boundaries —
is in the SQLite file, its WAL (copied while the server still runs) or the server log; nor in the rows of a
PostgreSQL database run the same way. Only values /v1/scan detects are used, so the corpus proves redaction, not luck.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from faker import Faker

from tests.e2e.serving import Server, running_server
from tests.integration.conftest import _postgres_url as postgres_url

pytestmark = pytest.mark.e2e

PER_KIND = 12
MIN_DETECTED = 5  # per kind: fewer would make the test prove little


@dataclass(frozen=True)
class Sample:
    kind: str  # the entity type the default policy redacts
    value: str
    text: str  # the value in a sentence context the PII check detects


def corpus(seed: int = 20261123) -> list[Sample]:
    fake, iban_fake = Faker("en_US"), Faker("en_GB")
    fake.seed_instance(seed)
    iban_fake.seed_instance(seed)
    kinds: dict[str, tuple[Callable[[], str], tuple[str, ...]]] = {
        "EMAIL_ADDRESS": (fake.email, ("My email is {v}, please write back.", "Contact support at {v} today.")),
        "PHONE_NUMBER": (fake.phone_number, ("Call me at {v} tomorrow.", "My phone number is {v}.")),
        "US_SSN": (fake.ssn, ("My SSN is {v}.", "My social security number is {v}.")),
        "CREDIT_CARD": (fake.credit_card_number, ("Please charge my credit card {v}.", "Card number: {v}")),
        "IBAN_CODE": (iban_fake.iban, ("Send the refund to IBAN {v}.", "My bank account IBAN is {v}.")),
        "PERSON": (fake.name, ("My name is {v}.", "Contact {v} at the front desk.")),
    }
    samples = []
    for kind, (make, contexts) in kinds.items():
        for i in range(PER_KIND):
            value = make()
            samples.append(Sample(kind, value, contexts[i % len(contexts)].format(v=value)))
    return samples


def forbidden(samples: list[Sample]) -> list[tuple[str, re.Pattern[bytes]]]:
    """For every value: its raw and NFKC forms (also JSON-escaped), and its digits-only form when ≥ 8 digits."""
    patterns = []
    for sample in samples:
        forms = {sample.value, unicodedata.normalize("NFKC", sample.value)}
        forms |= {json.dumps(f)[1:-1] for f in list(forms)}
        for form in forms:
            patterns.append((f"{sample.kind} {form!r}", re.compile(re.escape(form.encode()))))
        digits = re.sub(r"\D", "", sample.value)
        if len(digits) >= 8:
            on_boundaries = re.compile(rb"(?<!\d)" + digits.encode() + rb"(?!\d)")
            patterns.append((f"{sample.kind} digits of {sample.value!r}", on_boundaries))
    return patterns


def leaks(data: bytes, patterns: list[tuple[str, re.Pattern[bytes]]]) -> list[str]:
    return [label for label, pattern in patterns if pattern.search(data)]


def test_the_patterns_find_what_was_sent() -> None:
    samples = corpus()
    sent = "\n".join(s.text for s in samples).encode()
    found = set(leaks(sent, forbidden(samples)))
    assert {f"{s.kind} {s.value!r}" for s in samples} <= found
    assert any(label.startswith("CREDIT_CARD digits of") for label in found)  # cards are sent as bare digits


def _covered(sample: Sample, findings: list[dict[str, object]]) -> bool:
    start = sample.text.index(sample.value)
    end = start + len(sample.value)
    return any(
        f["type"] == sample.kind and int(f["start"]) <= start and int(f["end"]) >= end  # type: ignore[call-overload]
        for f in findings
    )


async def _send(server: Server, samples: list[Sample]) -> list[Sample]:
    """Scan every sample, keep those whose value is detected, then send those through chat (plain and streamed)."""
    async with httpx.AsyncClient(base_url=server.base, headers=server.auth, timeout=120) as client:
        semaphore = asyncio.Semaphore(8)

        async def scan(sample: Sample) -> bool:
            async with semaphore:
                response = await client.post("/v1/scan", json={"text": sample.text})
            assert response.status_code == 200, response.text
            return _covered(sample, response.json()["findings"])

        detected = [s for s, ok in zip(samples, await asyncio.gather(*map(scan, samples)), strict=True) if ok]

        async def chat(index: int, sample: Sample) -> None:
            body = {
                "messages": [{"role": "user", "content": sample.text}],
                "max_tokens": 8,
                "temperature": 0,
                "stream": index % 2 == 1,
            }
            async with semaphore:
                response = await client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200, response.text

        await asyncio.gather(*(chat(i, s) for i, s in enumerate(detected)))
    return detected


def _check_detection(samples: list[Sample], detected: list[Sample]) -> None:
    used = Counter(s.kind for s in detected)
    kinds = dict.fromkeys(s.kind for s in samples)
    print("PII values used (detected / generated):", {k: f"{used[k]}/{PER_KIND}" for k in kinds})
    assert all(used[kind] >= MIN_DETECTED for kind in kinds), used


def test_no_raw_pii_in_sqlite_wal_or_log(guard_home: Path, tmp_path: Path) -> None:
    samples = corpus()
    database = tmp_path / "guard.db"
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    with running_server(guard_home, tmp_path) as server:
        detected = asyncio.run(_send(server, samples))
        for suffix in ("", "-wal"):  # while the server runs: the WAL holds the recent pages until a checkpoint
            source = Path(f"{database}{suffix}")
            if source.exists():
                shutil.copyfile(source, snapshots / f"guard.db{suffix}")
    _check_detection(samples, detected)
    assert (snapshots / "guard.db-wal").stat().st_size > 0, "no WAL to inspect (is the database in WAL mode?)"
    patterns = forbidden(detected)
    files = [*snapshots.iterdir(), *tmp_path.glob("guard.db*"), server.log]  # during the run, and after exit
    for path in files:
        assert leaks(path.read_bytes(), patterns) == [], path


@pytest.mark.postgres
def test_no_raw_pii_in_postgres_rows_or_log(guard_home: Path, tmp_path: Path) -> None:
    import asyncpg

    url = postgres_url()  # skips without GUARD_TEST_POSTGRES_URL; drops the guard tables of that database
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def dump() -> bytes:
        connection = await asyncpg.connect(dsn)
        try:
            catalog = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = [r["tablename"] for r in catalog]
            lines = []
            for table in tables:
                rows = await connection.fetch(f'SELECT t::text AS row FROM "{table}" t')  # names from the catalog
                lines += [r["row"] for r in rows]
            return "\n".join(lines).encode()
        finally:
            await connection.close()

    samples = corpus(seed=7)
    with running_server(guard_home, tmp_path, GUARD_DATABASE_URL=url) as server:
        detected = asyncio.run(_send(server, samples))
    _check_detection(samples, detected)
    rows = asyncio.run(dump())
    assert len(rows) > 1000  # the audit rows are there to be searched
    patterns = forbidden(detected)
    assert leaks(rows, patterns) == []
    assert leaks(server.log.read_bytes(), patterns) == []
