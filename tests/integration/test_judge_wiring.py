"""The judge layer wired end to end: GUARD_JUDGE_MODEL loads a scorer through the engine's load plan, policies with
judge thresholds use it on input and output (its P(Yes) recorded in the audit row), and a policy asking for a judge
that is not configured stops startup. The dev Gemma-2 stands in for ShieldGemma: mechanics, not judgement."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from guard.app import create_app
from guard.checks import CheckUnavailable
from guard.models import load_models
from guard.settings import JudgeSettings
from tests.integration.conftest import AUTH, dev_settings
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.integration

JUDGING_POLICY = """\
name: default
version: "1.0.0"
refusal_message: "No."
input:
  prohibited_use:
    categories:
      weapons: {judge: 0.0}     # P(Yes) >= 0 always: every text is blocked by the judge
output:
  prohibited_use:
    categories:
      weapons: {judge: 1.0}     # P(Yes) < 1: scored, never blocking
"""


def _policies(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "default.yaml").write_text(text, encoding="utf-8")
    return directory


def test_a_policy_that_needs_a_judge_fails_startup_without_one(guard_home: Path, tmp_path: Path) -> None:
    settings = dev_settings(guard_home, "sqlite+aiosqlite://", policy_dir=_policies(tmp_path, JUDGING_POLICY))
    with pytest.raises(CheckUnavailable, match="GUARD_JUDGE_MODEL"):
        load_models(settings)


async def test_the_judge_scores_input_and_output(guard_home: Path, tmp_path: Path, database_url: str) -> None:
    settings = dev_settings(guard_home, database_url, policy_dir=_policies(tmp_path, JUDGING_POLICY))
    judge = str(guard_home / "dev-models" / "gemma-2")
    settings = replace(settings, engine=replace(settings.engine, judge=JudgeSettings(model=judge)))
    models = load_models(settings)
    async with AsyncTestClient(app=create_app(settings, models=models)) as client:
        blocked = await client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Say hello."}]}, headers=AUTH
        )
        assert blocked.status_code == 200, blocked.text
        findings = blocked.json()["guard"]["findings"]
        assert [(f["check"], f["type"], f["detail"]) for f in findings] == [("prohibited_use", "weapons", "judge")]
        scanned = await client.post(
            "/v1/scan", json={"text": "Here is a cake recipe.", "stage": "output"}, headers=AUTH
        )
        assert scanned.status_code == 200, scanned.text
        assert scanned.json()["decision"] == "allow"
    rows = {r["decision_id"]: r for r in await audit_rows(database_url)}
    output_row = rows[scanned.json()["decision_id"]]
    (entry,) = [s for s in output_row["scores"] if s["check"] == "prohibited_use"]
    assert 0.0 <= entry["scores"]["judge:weapons"] < 1.0
