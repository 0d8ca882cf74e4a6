"""The reviewer API and CLI against the real app and database (SQLite file and PostgreSQL): filters, pagination,
explanations without raw PII, streamed CSV/JSONL export, per-day stats, and tenant isolation."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine

from guard.cli import main
from guard.devmodels import TOXIC_TRIGGER_WORD
from guard.store.api_keys import create_api_key
from tests.integration.conftest import AUTH
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.integration

EMAIL = "maria.lopez@example.org"
TENANT_EMAIL = "k.tanaka@example.net"
CHAT = "/v1/chat/completions"


@dataclass
class Seeded:
    """The decisions made for a test, by name, and a reviewer key bound to tenant ``acme``."""

    ids: dict[str, str]
    tenant_reader: dict[str, str]


async def _seed(client: AsyncTestClient[Any], database_url: str) -> Seeded:
    engine = create_async_engine(database_url)
    try:
        scanner, _ = await create_api_key(engine, name="acme-scan", scopes=["scan"], tenant="acme")
        reader, _ = await create_api_key(engine, name="acme-review", scopes=["audit:read"], tenant="acme")
    finally:
        await engine.dispose()
    ids: dict[str, str] = {}

    async def scan(name: str, text: str, stage: str = "input", headers: dict[str, str] = AUTH) -> None:
        response = await client.post("/v1/scan", json={"text": text, "stage": stage}, headers=headers)
        assert response.status_code == 200, response.text
        ids[name] = response.json()["decision_id"]

    await scan("email", f"Please write to {EMAIL} about the invoice.")
    await scan("toxic", f"The new intern is a {TOXIC_TRIGGER_WORD} and a {TOXIC_TRIGGER_WORD}.", stage="output")
    await scan("clean", "The weekly meeting is on Thursday at ten.")
    chat = {"model": "default", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
    response = await client.post(CHAT, json=chat, headers=AUTH)
    assert response.status_code == 200, response.text
    ids["chat"] = response.json()["guard"]["decision_id"]
    response = await client.post(CHAT, json={**chat, "stream": True}, headers=AUTH)
    assert response.status_code == 200, response.text
    ids["stream_open"] = response.headers["x-guard-decision-id"]
    await scan("tenant", f"Mail {TENANT_EMAIL} today.", headers={"Authorization": f"Bearer {scanner}"})
    return Seeded(ids=ids, tenant_reader={"Authorization": f"Bearer {reader}"})


async def _ids(client: AsyncTestClient[Any], headers: dict[str, str] = AUTH, **params: Any) -> list[str]:
    """Every decision id the list returns for ``params``, following the cursor page by page."""
    found: list[str] = []
    cursor = None
    while True:
        query = {**params, "limit": params.get("limit", 500), **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/audit", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        found += [item["decision_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_filters_narrow_and_pagination_covers_every_row_once(
    client: AsyncTestClient[Any], database_url: str
) -> None:
    seeded = await _seed(client, database_url)
    ids = seeded.ids
    rows = {row["decision_id"]: row for row in await audit_rows(database_url)}
    everything = await _ids(client)
    assert set(everything) == set(rows)
    assert len(everything) == len(rows)
    paged = await _ids(client, limit=2)
    assert paged == everything  # same order, each row once
    listed = (await client.get("/v1/audit", params={"limit": 500}, headers=AUTH)).json()["items"]
    stamps = [(datetime.fromisoformat(item["created_at"]), item["decision_id"]) for item in listed]
    assert stamps == sorted(stamps, reverse=True)  # newest first

    def expected(predicate: Any) -> set[str]:
        return {i for i, row in rows.items() if predicate(row)}

    assert set(await _ids(client, decision="block")) == expected(lambda r: r["decision"] == "block") >= {ids["toxic"]}
    assert set(await _ids(client, check="pii")) == {ids["email"], ids["tenant"]}
    assert set(await _ids(client, check="pii", finding_type="EMAIL_ADDRESS")) == {ids["email"], ids["tenant"]}
    assert await _ids(client, check="pii", finding_type="PERSON_NOT_THERE") == []
    assert await _ids(client, check="toxicity", stage="output") == [ids["toxic"]]
    assert await _ids(client, check="toxicity", stage="input") == []
    assert set(await _ids(client, route="/v1/scan")) == expected(lambda r: r["route"] == "/v1/scan")
    assert set(await _ids(client, kind="stream_open")) == {ids["stream_open"]}
    assert set(await _ids(client, kind="stream_close")) == expected(lambda r: r["kind"] == "stream_close")
    assert set(await _ids(client, outcome="ok")) == expected(lambda r: r["outcome"] == "ok")
    version = rows[ids["email"]]["policy_version"]
    assert set(await _ids(client, policy="default", policy_version=version)) == expected(
        lambda r: r["policy_name"] == "default" and r["policy_version"] == version
    )
    assert await _ids(client, policy_version="no-such-version") == []
    assert await _ids(client, since=datetime.now(UTC).isoformat()) == []
    first = stamps[-1][0]
    assert await _ids(client, until=first.isoformat()) == []
    assert set(await _ids(client, since=first.isoformat())) == set(rows)
    assert await _ids(client, since=first.isoformat(), until=stamps[-2][0].isoformat()) == [stamps[-1][1]]

    for bad in ({"decision": "maybe"}, {"stage": "middle"}, {"kind": "other"}, {"cursor": "not-a-cursor"}):
        response = await client.get("/v1/audit", params=bad, headers=AUTH)
        assert response.status_code == 400, (bad, response.text)
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_explanation_names_check_clause_score_threshold_without_raw_pii(
    client: AsyncTestClient[Any], database_url: str
) -> None:
    ids = (await _seed(client, database_url)).ids

    response = await client.get(f"/v1/audit/{ids['email']}", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert EMAIL not in response.text
    assert body["policy_found"] is True
    (email,) = [e for e in body["explanation"] if e["type"] == "EMAIL_ADDRESS"]
    assert email["check"] == "pii"
    assert email["clause"] == "input.pii.entities.EMAIL_ADDRESS"
    assert email["threshold_source"] == "policy"
    assert email["threshold"] == 0.4  # policies/default.yaml input.pii.score_threshold
    assert email["score"] >= email["threshold"]
    assert email["action"] == "redact"
    assert email["redacted_span"] == "<EMAIL_ADDRESS_1>"
    assert email["rule"]

    toxic = (await client.get(f"/v1/audit/{ids['toxic']}", headers=AUTH)).json()
    explained = {e["type"]: e for e in toxic["explanation"]}
    assert explained, toxic
    for label, item in explained.items():
        assert item["check"] == "toxicity"
        assert item["clause"] == f"output.toxicity.thresholds.{label}"
        assert item["threshold_source"] == "policy"
        assert item["score"] >= item["threshold"]
        assert item["redacted_span"] is None  # the whole text is the span: nothing to show

    opening = (await client.get(f"/v1/audit/{ids['stream_open']}", headers=AUTH)).json()
    assert opening["kind"] == "stream_open"
    assert opening["linked_id"]
    closing = (await client.get(f"/v1/audit/{opening['linked_id']}", headers=AUTH)).json()
    assert closing["kind"] == "stream_close"
    assert closing["linked_id"] == ids["stream_open"]

    missing = await client.get("/v1/audit/00000000-0000-0000-0000-000000000000", headers=AUTH)
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}


def _normal(item: dict[str, Any]) -> dict[str, Any]:
    """A list item with times as instants, for comparing with an export."""
    return {k: datetime.fromisoformat(v) if k in ("created_at", "erased_at") and v else v for k, v in item.items()}


async def test_export_csv_and_jsonl_parse_back_to_the_list(client: AsyncTestClient[Any], database_url: str) -> None:
    await _seed(client, database_url)
    listed = (await client.get("/v1/audit", params={"limit": 500}, headers=AUTH)).json()["items"]
    scanned = (await client.get("/v1/audit", params={"limit": 500, "route": "/v1/scan"}, headers=AUTH)).json()

    response = await client.get("/v1/audit/export", params={"format": "jsonl"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert 'filename="audit.jsonl"' in response.headers["content-disposition"]
    exported = [json.loads(line) for line in response.text.splitlines()]
    assert [_normal(row) for row in exported] == [_normal(row) for row in listed]

    response = await client.get("/v1/audit/export", params={"format": "csv", "route": "/v1/scan"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="audit.csv"' in response.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["decision_id"] for row in table] == [row["decision_id"] for row in scanned["items"]]
    for row, item in zip(table, scanned["items"], strict=True):
        assert json.loads(row["findings"]) == item["findings"]
        assert json.loads(row["input_redacted"]) == item["input_redacted"]
        assert datetime.fromisoformat(row["created_at"]) == datetime.fromisoformat(item["created_at"])
        assert row["decision"] == item["decision"]
        assert int(row["http_status"]) == item["http_status"]
        assert row["output_redacted"] == (item["output_redacted"] or "")
    assert EMAIL not in response.text

    bad = await client.get("/v1/audit/export", params={"format": "xml"}, headers=AUTH)
    assert bad.status_code == 400


def test_csv_cells_defuse_formulas() -> None:
    from guard.audit.export import csv_cell

    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_cell("+1") == "'+1"
    assert csv_cell("-1") == "'-1"
    assert csv_cell("@SUM") == "'@SUM"
    assert csv_cell("plain") == "plain"
    assert csv_cell(-1) == -1
    assert csv_cell(None) == ""
    assert csv_cell([{"a": "=x"}]) == '[{"a":"=x"}]'


async def test_stats_count_per_day_by_decision_and_category(client: AsyncTestClient[Any], database_url: str) -> None:
    await _seed(client, database_url)
    rows = await audit_rows(database_url)
    response = await client.get("/v1/audit/stats", headers=AUTH)
    assert response.status_code == 200, response.text
    stats = response.json()

    def day(row: dict[str, Any]) -> str:
        created = row["created_at"]
        created = created if isinstance(created, datetime) else datetime.fromisoformat(created)
        return (created if created.tzinfo else created.replace(tzinfo=UTC)).astimezone(UTC).date().isoformat()

    by_decision = Counter((day(r), r["decision"]) for r in rows)
    assert {(e["day"], e["decision"]): e["count"] for e in stats["by_decision"]} == dict(by_decision)
    by_category = Counter((day(r), c) for r in rows for c in {f"{f['check']}:{f['type']}" for f in r["findings"]})
    assert {(e["day"], e["category"]): e["count"] for e in stats["by_category"]} == dict(by_category)
    assert any(e["category"] == "pii:EMAIL_ADDRESS" and e["count"] == 2 for e in stats["by_category"])

    narrowed = (await client.get("/v1/audit/stats", params={"decision": "block"}, headers=AUTH)).json()
    assert {e["decision"] for e in narrowed["by_decision"]} == {"block"}


async def test_a_tenant_reviewer_sees_only_its_tenant(client: AsyncTestClient[Any], database_url: str) -> None:
    seeded = await _seed(client, database_url)
    ids, headers = seeded.ids, seeded.tenant_reader

    assert await _ids(client, headers) == [ids["tenant"]]
    assert await _ids(client, headers, tenant="other") == [ids["tenant"]]  # a query cannot widen the key's tenant
    assert (await client.get(f"/v1/audit/{ids['tenant']}", headers=headers)).status_code == 200
    assert (await client.get(f"/v1/audit/{ids['email']}", headers=headers)).status_code == 404
    exported = await client.get("/v1/audit/export", params={"format": "jsonl"}, headers=headers)
    assert [json.loads(line)["decision_id"] for line in exported.text.splitlines()] == [ids["tenant"]]
    stats = (await client.get("/v1/audit/stats", headers=headers)).json()
    assert sum(e["count"] for e in stats["by_decision"]) == 1
    assert [e["category"] for e in stats["by_category"]] == ["pii:EMAIL_ADDRESS"]


async def test_cli_query_show_export_stats(
    client: AsyncTestClient[Any], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = (await _seed(client, database_url)).ids
    rows = await audit_rows(database_url)
    monkeypatch.setenv("GUARD_DATABASE_URL", database_url)
    runner = CliRunner()

    async def invoke(*args: str) -> Result:
        # The CLI runs its own event loop: give it a thread, away from the test's loop.
        return await asyncio.to_thread(runner.invoke, main, list(args))

    result = await invoke("audit", "query", "--check", "pii", "--limit", "500")
    assert result.exit_code == 0, result.output
    assert ids["email"] in result.output
    assert ids["tenant"] in result.output
    assert ids["clean"] not in result.output
    paged = await invoke("audit", "query", "--limit", "1")
    assert paged.exit_code == 0
    assert "--cursor " in paged.output

    result = await invoke("audit", "show", ids["email"])
    assert result.exit_code == 0, result.output
    assert "input.pii.entities.EMAIL_ADDRESS" in result.output
    assert "<EMAIL_ADDRESS_1>" in result.output
    assert EMAIL not in result.output
    assert (await invoke("audit", "show", "no-such-id")).exit_code == 1

    out = tmp_path / "audit.jsonl"
    result = await invoke("audit", "export", "--format", "jsonl", "--out", str(out))
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert {row["decision_id"] for row in exported} == {row["decision_id"] for row in rows}
    out_csv = tmp_path / "blocked.csv"
    result = await invoke("audit", "export", "--format", "csv", "--decision", "block", "--out", str(out_csv))
    assert result.exit_code == 0, result.output
    blocked = list(csv.DictReader(out_csv.open(newline="")))
    assert {row["decision_id"] for row in blocked} == {r["decision_id"] for r in rows if r["decision"] == "block"}

    result = await invoke("audit", "stats", "--tenant", "acme")
    assert result.exit_code == 0, result.output
    assert "pii:EMAIL_ADDRESS" in result.output
    assert "toxicity:" not in result.output
    assert (await invoke("audit", "query", "--decision", "maybe")).exit_code == 2


async def test_openapi_documents_the_reviewer_api(client: AsyncTestClient[Any]) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    components = schema["components"]["schemas"]
    assert {"AuditPage", "AuditDecision", "AuditDecisionDetail", "FindingExplanation", "AuditStats"} <= set(components)
    listed = {p["name"] for p in schema["paths"]["/v1/audit"]["get"]["parameters"]}
    assert {"check", "finding_type", "stage", "policy_version", "outcome", "kind", "cursor"} <= listed
    assert "tenant" not in listed  # the tenant comes from the key
    assert {"/v1/audit/export", "/v1/audit/stats", "/v1/audit/{decision_id}"} <= set(schema["paths"])


async def test_thresholds_come_from_the_stored_policy_version_even_when_it_extends(tmp_path: Path) -> None:
    from guard.audit import create_engine
    from guard.audit.explain import explain_findings
    from guard.audit.migrate import upgrade
    from guard.policy.registry import load_directory
    from guard.store.policy_versions import load_stored_policy, record_policy_versions

    (tmp_path / "base.yaml").write_text(
        'name: base\nversion: "1"\nrefusal_message: "no"\n'
        "input:\n  pii:\n    score_threshold: 0.5\n    entities:\n      EMAIL_ADDRESS: redact\n"
    )
    (tmp_path / "child.yaml").write_text(
        'name: child\nversion: "2"\nextends: base\n'
        "input:\n  pii:\n    entities:\n      EMAIL_ADDRESS: {action: flag, threshold: 0.85}\n"
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'guard.db'}"
    await asyncio.to_thread(upgrade, url)  # alembic runs its own event loop
    engine = create_engine(url)
    try:
        child = load_directory(tmp_path)["child"]
        await record_policy_versions(engine, [child])
        policy = await load_stored_policy(engine, "child", child.sha256)
        assert await load_stored_policy(engine, "child", "0" * 64) is None
    finally:
        await engine.dispose()
    assert policy is not None
    record = {
        "route": "/v1/scan",
        "input_redacted": [{"role": "input", "content": "to <EMAIL_ADDRESS_1>, cc <EMAIL_ADDRESS_2>"}],
        "output_redacted": None,
        "findings": [
            {"check": "pii", "type": "EMAIL_ADDRESS", "score": 0.9, "threshold": 0.85, "action": "flag", "start": 3,
             "end": 16, "stage": "input", "detail": "EmailRecognizer"},
            {"check": "pii", "type": "EMAIL_ADDRESS", "score": 0.9, "threshold": 0.85, "action": "flag", "start": 21,
             "end": 30, "stage": "input", "detail": "EmailRecognizer"},
        ],
    }  # fmt: skip
    first, second = explain_findings(record, policy)
    assert (first.clause, first.threshold, first.threshold_source) == (
        "input.pii.entities.EMAIL_ADDRESS",
        0.85,
        "policy",
    )
    # offsets index the text as sent: the second span is found after the first placeholder's length difference
    assert (first.redacted_span, second.redacted_span) == ("<EMAIL_ADDRESS_1>", "<EMAIL_ADDRESS_2>")
    unredacted = {**record, "input_redacted": [{"role": "input", "content": "to a@example.org, cc b@example.org"}]}
    assert [e.redacted_span for e in explain_findings(unredacted, None)] == [None, None]  # never the raw text
    assert explain_findings(unredacted, None)[0].threshold_source == "record"


async def test_the_same_prompt_is_found_by_its_keyed_digest(client: AsyncTestClient[Any]) -> None:
    prompt = "What is the capital of France?"
    scanned = await client.post("/v1/scan", json={"text": prompt}, headers=AUTH)
    chat = {"model": "default", "messages": [{"role": "user", "content": "  what is the CAPITAL of France? "}]}
    chatted = await client.post("/v1/chat/completions", json={**chat, "max_tokens": 2}, headers=AUTH)
    other = await client.post("/v1/scan", json={"text": "Something else entirely."}, headers=AUTH)
    assert {scanned.status_code, chatted.status_code, other.status_code} == {200}

    record = (await client.get(f"/v1/audit/{scanned.json()['decision_id']}", headers=AUTH)).json()
    digest = record["prompt_hmac"]
    assert len(digest) == 64
    assert digest != hashlib.sha256(prompt.encode()).hexdigest()  # keyed: not a plain hash of the text
    found = (await client.get("/v1/audit", params={"prompt_hmac": digest}, headers=AUTH)).json()["items"]
    # case and spacing are folded, so the chat's last user message matches the scan
    assert {item["decision_id"] for item in found} == {
        scanned.json()["decision_id"],
        chatted.json()["guard"]["decision_id"],
    }
