"""Streams through the gateway: OpenAI chunks, checked text only, two linked audit records, [DONE] last."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from guard.devmodels import TOXIC_TRIGGER_WORD, scripted
from tests.integration.conftest import AUTH
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.integration


def _events(body: str) -> list[Any]:
    """The SSE data payloads, decoded (``[DONE]`` stays a string)."""
    data = [line.removeprefix("data: ") for line in body.splitlines() if line.startswith("data: ")]
    return [item if item == "[DONE]" else json.loads(item) for item in data]


async def _stream(client: AsyncTestClient[Any], path: str, body: dict[str, Any]) -> tuple[Any, list[Any]]:
    response = await client.post(path, json={**body, "stream": True}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return response, _events(response.text)


async def test_chat_stream_sends_checked_text_and_is_audited_twice(
    client: AsyncTestClient[Any], database_url: str
) -> None:
    dialogue = scripted("email")
    body = {
        "messages": [{"role": "user", "content": dialogue.prompt}],
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }
    response, events = await _stream(client, "/v1/chat/completions", body)

    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c.get("object") == "chat.completion.chunk" for c in chunks), chunks
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert "help.desk@example.com" not in text  # the policy redacts e-mail addresses in output
    assert "<EMAIL_ADDRESS_1>" in text
    final = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["guard"]["decision"] == "redact"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0

    opening_id = response.headers["x-guard-decision-id"]
    rows = {row["decision_id"]: row for row in await audit_rows(database_url)}
    opening, closing = rows[opening_id], rows[final["guard"]["decision_id"]]
    assert (opening["kind"], closing["kind"]) == ("stream_open", "stream_close")
    assert closing["parent_id"] == opening_id
    assert opening["output_redacted"] is None
    assert closing["coverage"] == 1.0
    assert "help.desk@example.com" not in json.dumps(closing, default=str)


async def test_stream_blocked_on_output_releases_only_the_refusal(client: AsyncTestClient[Any]) -> None:
    dialogue = scripted("toxic")
    _, events = await _stream(
        client, "/v1/chat/completions", {"messages": [{"role": "user", "content": dialogue.prompt}], "temperature": 0}
    )
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in events[:-1] if c["choices"])
    assert TOXIC_TRIGGER_WORD not in text
    assert events[-2]["choices"][0]["finish_reason"] == "content_filter"
    assert events[-1] == "[DONE]"


async def test_completion_stream_and_whole(client: AsyncTestClient[Any]) -> None:
    request = {"prompt": "The new intern", "max_tokens": 8, "temperature": 0}
    whole = await client.post("/v1/completions", json=request, headers=AUTH)
    assert whole.status_code == 200, whole.text
    answer = whole.json()
    assert answer["object"] == "text_completion"
    assert answer["usage"]["prompt_tokens"] > 0
    _, events = await _stream(client, "/v1/completions", request)
    streamed = "".join(c["choices"][0]["text"] for c in events[:-1] if c["choices"])
    assert streamed == answer["choices"][0]["text"]
    assert events[-1] == "[DONE]"


async def test_refusals_before_the_stream_starts_are_json_errors(client: AsyncTestClient[Any]) -> None:
    too_long = {"messages": [{"role": "user", "content": "hello " * 3000}], "max_tokens": 500, "stream": True}
    response = await client.post("/v1/chat/completions", json=too_long, headers={**AUTH, "X-Guard-Policy": "nope"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_a_later_violation_cuts_the_stream_after_the_checked_part(
    client: AsyncTestClient[Any], database_url: str
) -> None:
    dialogue = scripted("late_toxic")
    clean_sentence, violation = dialogue.reply.split(". ", 1)
    _, events = await _stream(
        client, "/v1/chat/completions", {"messages": [{"role": "user", "content": dialogue.prompt}], "temperature": 0}
    )
    chunks = [c for c in events[:-1] if c["choices"]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.startswith(clean_sentence)  # the checked first sentence was released...
    assert TOXIC_TRIGGER_WORD not in text  # ...the violating one never reached the client
    assert violation.split()[0] not in text
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "content_filter"
    assert final["guard"]["decision"] == "block"
    assert events[-1] == "[DONE]"

    closing = next(r for r in await audit_rows(database_url) if r["decision_id"] == final["guard"]["decision_id"])
    assert closing["coverage"] == 1.0  # everything sent was checked before it was sent
    assert closing["output_redacted"] == text
    assert any(f["check"] == "toxicity" and f["action"] == "block" for f in closing["findings"])
    toxicity_scores = [s["scores"] for s in closing["scores"] if s["check"] == "toxicity"]
    assert len(toxicity_scores) >= 2  # the released sentence and the withheld one were both scored
