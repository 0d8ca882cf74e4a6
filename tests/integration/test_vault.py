"""The per-request vault: placeholders in the answer are restored for the caller who sent the originals only."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from guard.app import create_app
from guard.devmodels import scripted
from guard.models import Models
from tests.integration.conftest import AUTH, dev_settings
from tests.integration.dbdump import raw_dump

pytestmark = pytest.mark.integration

RESTORING_POLICY = """\
name: default
version: "1.0.0"
refusal_message: "No."
input:
  pii:
    restore: true
    entities:
      PERSON: redact
output:
  pii:
    entities:
      PERSON: redact
      EMAIL_ADDRESS: redact
"""


@pytest.fixture
async def restoring_client(guard_home: Path, database_url: str, models: Models, tmp_path: Path) -> Any:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "default.yaml").write_text(RESTORING_POLICY, encoding="utf-8")
    app = create_app(dev_settings(guard_home, database_url, policy_dir=policies), models=models)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def test_concurrent_requests_each_get_their_own_names_back(
    restoring_client: AsyncTestClient[Any], database_url: str
) -> None:
    dialogue = scripted("greeting")  # the model sees "Please greet <PERSON_1> for me." and answers with <PERSON_1>
    names = ["Maria Garcia", "John Smith", "Akira Tanaka", "Olivia Brown"]

    async def greet(name: str, stream: bool) -> str:
        prompt = dialogue.prompt.replace("<PERSON_1>", name)
        body = {"messages": [{"role": "user", "content": prompt}], "temperature": 0, "stream": stream}
        response = await restoring_client.post("/v1/chat/completions", json=body, headers=AUTH)
        assert response.status_code == 200, response.text
        if not stream:
            return str(response.json()["choices"][0]["message"]["content"])
        lines = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
        chunks = [json.loads(line) for line in lines if line != "[DONE]"]
        return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])

    answers = await asyncio.gather(*(greet(name, stream=i % 2 == 1) for i, name in enumerate(names)))
    for name, answer in zip(names, answers, strict=True):
        assert answer == dialogue.reply.replace("<PERSON_1>", name)
        assert not any(other in answer for other in names if other != name)
    stored = await raw_dump(database_url)
    assert "<PERSON_1>" in stored
    assert not any(name in stored for name in names)  # the vault is never stored


async def test_pii_that_first_appears_in_the_output_stays_redacted(restoring_client: AsyncTestClient[Any]) -> None:
    dialogue = scripted("email")  # the model's own answer carries an address the caller never sent
    body = {"messages": [{"role": "user", "content": dialogue.prompt}], "temperature": 0}
    response = await restoring_client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == dialogue.reply.replace(
        "help.desk@example.com", "<EMAIL_ADDRESS_1>"
    )
