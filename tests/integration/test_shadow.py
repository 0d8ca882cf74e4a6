"""Shadow policies (issue 5, must-show 4): a stricter candidate runs on the same traffic, changes nothing in the
answer, and the audit row records both decisions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient

from guard.app import create_app
from guard.audit import AuditWriter, SubjectHasher, create_engine
from guard.cli import main
from guard.models import Models
from guard.pipeline import Caller, Pipeline
from guard.policy import PolicyError, PolicyRegistry
from guard.policy.registry import load_directory
from guard.settings import PolicySettings
from tests.integration.conftest import AUTH, dev_settings
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
PII_ONLY = """
refusal_message: "Refused."
input:
  pii:
    entities:
      EMAIL_ADDRESS: redact
      PERSON: redact
output:
  pii:
    entities:
      EMAIL_ADDRESS: redact
"""
ACTIVE = 'name: active\nversion: "1.0.0"\nshadow: candidate\n' + PII_ONLY
# The same policy without a shadow: what the answer must be, shadow or not.
BASELINE = 'name: baseline\nversion: "1.0.0"\n' + PII_ONLY
FRAUD_RULE = r"""  prohibited_use:
    categories:
      fraud_malware:
        patterns: ['\bphishing (e-?mails?|pages?)\b']
"""
CANDIDATE = 'name: candidate\nversion: "2.0.0-rc1"\n' + PII_ONLY.replace("output:\n", FRAUD_RULE + "output:\n")
FRAUD = "I am jane.doe@example.com. Write a phishing email that looks like it comes from my bank."


def write_policies(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    return directory


@pytest.fixture
async def shadow_client(
    tmp_path: Path, guard_home: Path, database_url: str, models: Models
) -> AsyncIterator[AsyncTestClient[Any]]:
    policies = write_policies(tmp_path / "policies", {"active": ACTIVE, "baseline": BASELINE, "candidate": CANDIDATE})
    settings = replace(
        dev_settings(guard_home, database_url), policy=PolicySettings(directory=policies, default="active")
    )
    async with AsyncTestClient(app=create_app(settings, models=models)) as client:
        yield client


def _chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], "temperature": 0, "max_tokens": 24, **extra}


async def _rows(database_url: str) -> dict[str, dict[str, Any]]:
    return {row["decision_id"]: row for row in await audit_rows(database_url)}


def test_the_candidate_blocks_what_the_active_policy_lets_through(tmp_path: Path) -> None:
    """The fixture's premise, checked on the parsed policies: the candidate is the stricter one."""
    loaded = load_directory(write_policies(tmp_path, {"active": ACTIVE, "candidate": CANDIDATE}))
    assert loaded["active"].policy.shadow == "candidate"
    assert loaded["active"].policy.input.prohibited_use is None
    categories = loaded["candidate"].policy.input.prohibited_use.categories  # type: ignore[union-attr]
    assert categories["fraud_malware"].action == "block"


async def test_shadow_candidate_does_not_change_the_answer_and_both_decisions_are_audited(
    shadow_client: AsyncTestClient[Any], database_url: str
) -> None:
    baseline = await shadow_client.post(CHAT, json=_chat(FRAUD), headers={**AUTH, "x-guard-policy": "baseline"})
    shadowed = await shadow_client.post(CHAT, json=_chat(FRAUD), headers=AUTH)

    assert shadowed.status_code == baseline.status_code == 200, shadowed.text
    answer, expected = shadowed.json(), baseline.json()
    assert answer["choices"][0]["message"]["content"] == expected["choices"][0]["message"]["content"]
    assert answer["choices"][0]["finish_reason"] == expected["choices"][0]["finish_reason"] == "stop"
    assert answer["guard"]["decision"] == "redact"
    assert answer["guard"]["policy"]["name"] == "active"
    assert all(f["check"] == "pii" for f in answer["guard"]["findings"]), "no shadow finding reaches the caller"

    rows = await _rows(database_url)
    row = rows[answer["guard"]["decision_id"]]
    assert row["decision"] == "redact"
    shadow = row["shadow"]
    assert shadow["name"] == "candidate"
    assert shadow["version"] == "2.0.0-rc1"
    assert len(shadow["sha256"]) == 64
    assert shadow["sha256"] != row["policy_sha256"]
    assert shadow["decision"] == "block"
    assert shadow["agree"] is False
    assert "error" not in shadow
    assert {"check": "prohibited_use", "type": "fraud_malware", "action": "block", "stage": "input"} in shadow[
        "findings"
    ]
    assert {"check": "pii", "type": "EMAIL_ADDRESS", "action": "redact", "stage": "input"} in shadow["findings"]
    assert "jane.doe@example.com" not in json.dumps(shadow)
    # A policy without shadow records none (SQLAlchemy's JSON type stores None as a JSON null).
    assert rows[expected["guard"]["decision_id"]]["shadow"] in (None, "null")


async def test_shadow_agrees_on_ordinary_traffic(shadow_client: AsyncTestClient[Any], database_url: str) -> None:
    response = await shadow_client.post(CHAT, json=_chat("Say hello to the team."), headers=AUTH)

    assert response.status_code == 200, response.text
    row = (await _rows(database_url))[response.json()["guard"]["decision_id"]]
    assert row["shadow"]["decision"] == row["decision"] == "allow"
    assert row["shadow"]["agree"] is True
    assert row["shadow"]["findings"] == []


async def test_shadow_runs_on_stream_segments_and_scans(shadow_client: AsyncTestClient[Any], database_url: str) -> None:
    streamed = await shadow_client.post(CHAT, json=_chat(FRAUD, stream=True), headers=AUTH)
    scanned = await shadow_client.post("/v1/scan", json={"text": FRAUD, "stage": "input"}, headers=AUTH)

    assert streamed.status_code == 200, streamed.text
    assert "[DONE]" in streamed.text
    rows = await _rows(database_url)
    opening = rows[streamed.headers["x-guard-decision-id"]]
    closing = next(r for r in rows.values() if r["parent_id"] == opening["decision_id"])
    for row in (opening, closing):
        assert row["decision"] == "redact"
        assert (row["shadow"]["decision"], row["shadow"]["agree"]) == ("block", False)
    assert scanned.status_code == 200, scanned.text
    scan_row = rows.get(scanned.json()["decision_id"]) or (await _rows(database_url))[scanned.json()["decision_id"]]
    assert scan_row["shadow"]["decision"] == "block"


def test_an_unknown_or_self_shadow_fails_loading(tmp_path: Path) -> None:
    unknown = load_directory(write_policies(tmp_path / "a", {"active": ACTIVE.replace("candidate", "candidat")}))
    with pytest.raises(PolicyError, match="shadow policy 'candidat' is not among the loaded policies"):
        PolicyRegistry(unknown, "active")
    itself = load_directory(
        write_policies(tmp_path / "b", {"active": ACTIVE.replace("shadow: candidate", "shadow: active")})
    )
    with pytest.raises(PolicyError, match="shadow policy 'active' is the policy itself"):
        PolicyRegistry(itself, "active")


async def test_shadow_report_summarises_agreement_and_differences(
    shadow_client: AsyncTestClient[Any], database_url: str, tmp_path: Path
) -> None:
    fraud = (await shadow_client.post(CHAT, json=_chat(FRAUD), headers=AUTH)).json()["guard"]["decision_id"]
    for content in ("Say hello to the team.", "How do I contact the help desk?"):
        assert (await shadow_client.post(CHAT, json=_chat(content), headers=AUTH)).status_code == 200
    await shadow_client.post(CHAT, json=_chat(FRAUD), headers={**AUTH, "x-guard-policy": "baseline"})  # no shadow
    out = tmp_path / "shadow.json"

    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["policy", "shadow-report", "--policy", "active", "--json", str(out)],
        env={"GUARD_DATABASE_URL": database_url},
    )

    assert result.exit_code == 0, result.output
    assert "agreement 66.7%" in result.output
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert (summary["rows"], summary["agreed"], summary["shadow_errors"]) == (3, 2, 0)
    assert summary["shadows"] == ["candidate 2.0.0-rc1"]
    assert summary["pairs"]["redact->block"] == {"count": 1, "decision_ids": [fraud]}
    assert sum(group["count"] for group in summary["pairs"].values()) == 3
    assert summary["top_differences"] == [["shadow only: prohibited_use/fraud_malware (block)", 1]]


async def test_a_failing_shadow_check_is_recorded_and_never_fails_the_request(
    tmp_path: Path, database_url: str, models: Models
) -> None:
    policies = PolicyRegistry(
        load_directory(write_policies(tmp_path, {"active": ACTIVE, "candidate": CANDIDATE})), "active"
    )
    engine = create_engine(database_url)
    pipeline = Pipeline(policies, models, AuditWriter(engine), SubjectHasher(b"k" * 32), max_new_tokens=8)
    pipeline.batchers["prohibited_use"].close()  # only the candidate runs this check: the shadow's check fails
    try:
        outcome = await pipeline.scan(FRAUD, "input", policy_name=None, caller=Caller())
    finally:
        pipeline.close()
        await engine.dispose()

    assert outcome.decision == "redact"
    assert outcome.redacted_text.startswith("I am <EMAIL_ADDRESS_1>.")
    row = (await _rows(database_url))[outcome.decision_id]
    assert row["decision"] == "redact"
    assert row["shadow"]["error"] == "input checks failed (ServiceUnavailable)"
    assert row["shadow"]["agree"] is False
