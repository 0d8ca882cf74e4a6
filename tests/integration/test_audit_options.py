"""A policy's ``audit:`` options decide what its audit rows keep; name, version, sha256 and findings always stay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from guard.app import create_app
from guard.models import Models
from guard.pipeline import TEXT_NOT_KEPT
from tests.integration.conftest import AUTH, dev_settings
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.integration

POLICY = """\
name: default
version: "1.0.0"
refusal_message: "No."
audit:
  store_text: {text}
  store_scores: {scores}
input:
  pii:
    entities:
      EMAIL_ADDRESS: redact
output:
  pii:
    entities:
      EMAIL_ADDRESS: redact
  toxicity:
    thresholds: {{toxicity: 0.9}}
"""


async def _client(home: Path, url: str, models: Models, tmp_path: Path, text: bool, scores: bool) -> Any:
    yaml = POLICY.format(text=str(text).lower(), scores=str(scores).lower())
    return _app_with_policy(home, url, models, tmp_path, yaml)


def _app_with_policy(home: Path, url: str, models: Models, tmp_path: Path, yaml: str) -> Any:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "default.yaml").write_text(yaml, encoding="utf-8")
    return AsyncTestClient(app=create_app(dev_settings(home, url, policy_dir=policies), models=models))


@pytest.fixture
async def metadata_only(
    guard_home: Path, database_url: str, models: Models, tmp_path: Path
) -> AsyncIterator[AsyncTestClient[Any]]:
    async with await _client(guard_home, database_url, models, tmp_path, text=False, scores=False) as client:
        yield client


async def test_metadata_only_policy_keeps_no_text_and_no_scores(
    metadata_only: AsyncTestClient[Any], database_url: str
) -> None:
    scan = await metadata_only.post(
        "/v1/scan", json={"text": "Mail jane.roe@example.org", "stage": "input"}, headers=AUTH
    )
    assert scan.status_code == 200, scan.text
    chat = await metadata_only.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hello there"}]}, headers=AUTH
    )
    assert chat.status_code == 200, chat.text
    rows = await audit_rows(database_url)
    assert {row["route"] for row in rows} == {"/v1/scan", "/v1/chat/completions"}
    for row in rows:
        assert (row["policy_name"], row["policy_version"]) == ("default", "1.0.0")
        assert row["policy_sha256"]
        assert [m["content"] for m in row["input_redacted"]] == [TEXT_NOT_KEPT]
        assert row["scores"] == []
    scan_row = next(row for row in rows if row["route"] == "/v1/scan")
    assert [f["type"] for f in scan_row["findings"]] == ["EMAIL_ADDRESS"]  # findings stay
    chat_row = next(row for row in rows if row["route"] != "/v1/scan")
    assert chat_row["output_redacted"] == TEXT_NOT_KEPT


async def test_default_policy_keeps_text_and_scores(
    guard_home: Path, database_url: str, models: Models, tmp_path: Path
) -> None:
    async with await _client(guard_home, database_url, models, tmp_path, text=True, scores=True) as client:
        body = {"text": "Mail jane.roe@example.org", "stage": "output"}
        scan = await client.post("/v1/scan", json=body, headers=AUTH)
        assert scan.status_code == 200, scan.text
    (row,) = await audit_rows(database_url)
    assert row["input_redacted"] == [{"role": "output", "content": "Mail <EMAIL_ADDRESS_1>"}]
    assert {score["check"] for score in row["scores"]} == {"toxicity"}


EXCEPTION_POLICY = """\
name: default
version: "1.0.0"
refusal_message: "No."
input:
  prohibited_use:
    categories:
      dangerous_activities:
        patterns: ['\\bsmuggle\\b.{0,20}\\bdrugs\\b']
        exceptions: ['\\bin the (movie|film)\\b']
"""


async def test_a_lifted_deny_rule_is_in_the_audit_row(
    guard_home: Path, database_url: str, models: Models, tmp_path: Path
) -> None:
    texts = ["How did they smuggle drugs in the movie?", "How do I smuggle drugs past customs?"]
    async with _app_with_policy(guard_home, database_url, models, tmp_path, EXCEPTION_POLICY) as client:
        for text in texts:
            scan = await client.post("/v1/scan", json={"text": text, "stage": "input"}, headers=AUTH)
            assert scan.status_code == 200, scan.text
    lifted, blocked = sorted(await audit_rows(database_url), key=lambda row: row["decision"] == "block")
    assert lifted["decision"] == "allow"
    assert [(s["check"], s["scores"]) for s in lifted["scores"]] == [
        ("prohibited_use", {"deny_rule_exception:dangerous_activities": 1.0})
    ]
    assert blocked["decision"] == "block"
    assert [(f["check"], f["detail"]) for f in blocked["findings"]] == [("prohibited_use", "deny_rule")]
