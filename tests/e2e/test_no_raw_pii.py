"""Nothing raw (issue 7, must-show 4; issue 17, must-show 1): a seeded Faker corpus of personal data and the
synthetic secrets set (benchmarks/data/secrets/eval.jsonl, every credential format) go through chat and scan on the
real server, under the default policy (redact) and, for half the secrets, the strict one (block); afterwards no raw
value — nor its NFKC form, nor (for ≥ 8 digits) its digits-only form on token boundaries — is in the SQLite file, its
WAL (copied while the server still runs) or the server log; nor in the rows and a ``pg_dump`` of a PostgreSQL
database run the same way. Only values /v1/scan detects are used, so the corpus proves redaction, not luck (the
secrets set's detection rate is asserted on its own: ≥ 95%).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
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
SECRETS_SET = Path(__file__).parents[2] / "benchmarks" / "data" / "secrets" / "eval.jsonl"
MIN_SECRETS_DETECTED = 0.95


@dataclass(frozen=True)
class Sample:
    kind: str  # the entity type the default policy redacts, or ``secrets:<format>``
    value: str
    text: str  # the value in a sentence context the PII check detects
    also: tuple[str, ...] = ()
    """Further values of the same text that must not be stored (a key id and its secret key)."""
    policy: str = "default"


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


def secrets_corpus() -> list[Sample]:
    """Every credential of the committed secrets set; every other one is sent under the strict policy (block)."""
    rows = [json.loads(line) for line in SECRETS_SET.read_text(encoding="utf-8").splitlines()]
    secrets = [row for row in rows if row["label"] == "secret"]
    return [
        Sample(f"secrets:{row['kind']}", row["secrets"][0], row["text"], tuple(row["secrets"][1:]), policy)
        for i, row in enumerate(secrets)
        for policy in ["strict" if i % 2 else "default"]
    ]


def forbidden(samples: list[Sample]) -> list[tuple[str, re.Pattern[bytes]]]:
    """For every value: its raw and NFKC forms (also JSON-escaped), and its digits-only form when ≥ 8 digits."""
    patterns = []
    for sample in samples:
        for value in (sample.value, *sample.also):
            forms = {value, unicodedata.normalize("NFKC", value)}
            forms |= {json.dumps(f)[1:-1] for f in list(forms)}
            for form in forms:
                patterns.append((f"{sample.kind} {form!r}", re.compile(re.escape(form.encode()))))
            digits = re.sub(r"\D", "", value)
            if len(digits) >= 8 and not sample.kind.startswith("secrets:"):
                on_boundaries = re.compile(rb"(?<!\d)" + digits.encode() + rb"(?!\d)")
                patterns.append((f"{sample.kind} digits of {value!r}", on_boundaries))
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
    def found(value: str) -> bool:
        start = sample.text.index(value)
        end = start + len(value)
        return any(
            (f["type"] == sample.kind or (sample.kind.startswith("secrets:") and f["check"] == "secrets"))
            and int(f["start"]) <= start  # type: ignore[call-overload]
            and int(f["end"]) >= end  # type: ignore[call-overload]
            for f in findings
        )

    return all(found(value) for value in (sample.value, *sample.also))


async def _send(server: Server, samples: list[Sample]) -> list[Sample]:
    """Scan every sample, keep those whose value is detected, then send those through chat (plain and streamed)."""
    async with httpx.AsyncClient(base_url=server.base, headers=server.auth, timeout=120) as client:
        semaphore = asyncio.Semaphore(8)

        async def scan(sample: Sample) -> bool:
            async with semaphore:
                response = await client.post("/v1/scan", json={"text": sample.text, "policy": sample.policy})
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
                response = await client.post(
                    "/v1/chat/completions", json=body, headers={"X-Guard-Policy": sample.policy}
                )
            assert response.status_code == 200, response.text

        await asyncio.gather(*(chat(i, s) for i, s in enumerate(detected)))
    return detected


def _check_detection(samples: list[Sample], detected: list[Sample]) -> None:
    used = Counter(s.kind for s in detected)
    generated = Counter(s.kind for s in samples)
    print("values used (detected / generated):", {k: f"{used[k]}/{n}" for k, n in generated.items()})
    pii = [kind for kind in generated if not kind.startswith("secrets:")]
    assert all(used[kind] >= MIN_DETECTED for kind in pii), used
    secrets = [s for s in samples if s.kind.startswith("secrets:")]
    found = sum(1 for s in detected if s.kind.startswith("secrets:"))
    assert found >= MIN_SECRETS_DETECTED * len(secrets), (found, len(secrets))


def test_no_raw_pii_in_sqlite_wal_or_log(guard_home: Path, tmp_path: Path) -> None:
    samples = corpus() + secrets_corpus()
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

    samples = corpus(seed=7) + secrets_corpus()
    with running_server(guard_home, tmp_path, GUARD_DATABASE_URL=url) as server:
        detected = asyncio.run(_send(server, samples))
    _check_detection(samples, detected)
    rows = asyncio.run(dump())
    assert len(rows) > 1000  # the audit rows are there to be searched
    patterns = forbidden(detected)
    assert leaks(rows, patterns) == []
    assert leaks(server.log.read_bytes(), patterns) == []
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed (the rows were searched above)")
    dumped = subprocess.run(["pg_dump", "--no-owner", dsn], check=True, capture_output=True).stdout
    assert b"audit_decisions" in dumped
    assert leaks(dumped, patterns) == []
