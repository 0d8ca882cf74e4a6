"""Secrets through the pipeline (issue 17): input, whole answers, streams and scans; the records never hold one.

The pipeline runs the fake orchestration checks plus the real secrets check (a library with no model: nothing to
fake). The fake engine answers with a made-up token in a provider's documented shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from guard.checks.secrets import SecretsCheck
from guard.engine import ChatMessage, SamplingParams
from guard.pipeline import Caller, Pipeline, Text
from guard.policy import PolicyRegistry
from tests.unit.pipeline.fakes import POLICY, FakeEngine, FakeWriter, fake_checks, make_pipeline, write_policy

pytestmark = pytest.mark.unit

TOKEN = "ghp_R7kQ2mZx9LpT4vWn8BcY1sJd5HfG3aE6uK0o"
KEY_ID = "AKIAQ4W2LZT7MNB3XK5P"
REPLY = f"Set the header to Bearer {TOKEN} and retry. The key {KEY_ID} is yours."
PARAMS = SamplingParams(max_tokens=64, temperature=0.0)
WITH_SECRETS = POLICY.replace("  injection: {{}}\n", "  injection: {{}}\n  secrets: {{}}\n").replace(
    "  toxicity:\n", "  secrets: {{types: {{AWS_ACCESS_KEY: block}}}}\n  toxicity:\n", 1
)


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, FakeWriter]]:
    writer = FakeWriter()
    checks: dict[str, Any] = {**fake_checks(), "secrets": SecretsCheck.load()}
    policies = PolicyRegistry.from_directory(write_policy(tmp_path, body=WITH_SECRETS), "test")
    built = make_pipeline(policies, checks, FakeEngine(REPLY), writer)
    yield built, writer
    built.close()


def _stored(writer: FakeWriter) -> str:
    return msgspec.json.encode(writer.records).decode()


async def test_input_secrets_are_redacted_before_the_model_and_never_stored(
    pipeline: tuple[Pipeline, FakeWriter],
) -> None:
    built, writer = pipeline
    content = f"My token is {TOKEN}, why 401?"
    outcome = await built.chat([ChatMessage(role="user", content=content)], PARAMS, policy_name=None, caller=Caller())

    assert any(f.check == "secrets" and f.type == "GITHUB_TOKEN" for f in outcome.findings)
    assert TOKEN not in _stored(writer)
    assert "<GITHUB_TOKEN_1>" in _stored(writer)


async def test_a_blocked_output_secret_refuses_and_is_masked_in_the_record(
    pipeline: tuple[Pipeline, FakeWriter],
) -> None:
    built, writer = pipeline
    outcome = await built.chat([ChatMessage(role="user", content="Hi")], PARAMS, policy_name=None, caller=Caller())

    assert outcome.decision == "block"
    assert TOKEN not in outcome.text
    assert KEY_ID not in outcome.text
    assert TOKEN not in _stored(writer)
    assert KEY_ID not in _stored(writer)


async def test_a_stream_never_releases_or_stores_a_secret(pipeline: tuple[Pipeline, FakeWriter]) -> None:
    built, writer = pipeline
    events = []
    stream = built.stream(PARAMS, policy_name=None, caller=Caller(), messages=[ChatMessage(role="user", content="Hi")])
    async with contextlib.aclosing(stream) as events_stream:
        events = [event async for event in events_stream]
    sent = "".join(e.text for e in events if isinstance(e, Text))

    assert TOKEN not in sent  # the first sentence was redacted, the second blocked
    assert "<GITHUB_TOKEN_1>" in sent
    assert KEY_ID not in sent
    assert TOKEN not in _stored(writer)
    assert KEY_ID not in _stored(writer)


async def test_a_scan_redacts_and_records_no_secret(pipeline: tuple[Pipeline, FakeWriter]) -> None:
    built, writer = pipeline
    outcome = await built.scan(f"export TOKEN={TOKEN}", "input", policy_name=None, caller=Caller())

    assert outcome.redacted_text == "export TOKEN=<GITHUB_TOKEN_1>"
    assert [(f.check, f.type) for f in outcome.findings] == [("secrets", "GITHUB_TOKEN")]
    assert TOKEN not in _stored(writer)
