"""The running server under streaming clients and bursts: the official `openai` client, a client that disconnects,
and more concurrent requests than the engine queue holds.

The server runs a tiny randomly initialised Gemma-2 (the dev tokenizer, real architecture) whose end-of-turn and
other control tokens have zero embeddings, so greedy decoding practically never stops before max_tokens: long
generations make a cancelled stream and a full queue observable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.serving import Server, running_server

pytestmark = pytest.mark.e2e

SLOTS, QUEUE = 2, 2


@pytest.fixture(scope="module")
def server(guard_home: Path, endless_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = {
        "GUARD_MODEL": str(endless_model),
        "GUARD_MAX_BATCH_SIZE": str(SLOTS),
        "GUARD_MAX_QUEUE": str(QUEUE),
        "GUARD_MAX_NEW_TOKENS": "4000",
    }
    with running_server(guard_home, tmp_path_factory.mktemp("server"), **settings) as running:
        yield running


def _engine_state(server: Server) -> dict[str, Any]:
    ready = httpx.get(f"{server.base}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    return dict(ready.json()["engine"])


def _wait_running(server: Server, running: int, timeout: float) -> float:
    """Seconds until the engine runs ``running`` sequences (polling /readyz)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _engine_state(server)["running"] == running:
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"engine not at {running} running sequences after {timeout} s: {_engine_state(server)}")


def test_openai_client_streams_chat_and_completions(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key=server.key, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "Tell me a story."}],
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text.strip()
    assert finishes == ["length"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12

    whole = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Tell me a story."}], max_tokens=12, temperature=0
    )
    assert whole.choices[0].message.content == text  # greedy: streamed and whole answers agree

    pieces = list(
        client.completions.create(model="default", prompt="Once upon", max_tokens=6, temperature=0, stream=True)
    )
    assert "".join(p.choices[0].text for p in pieces if p.choices).strip()
    assert pieces[-1].choices[0].finish_reason == "length"


def test_a_disconnected_stream_frees_its_slot(server: Server) -> None:
    body = {
        "messages": [{"role": "user", "content": "Write forever."}],
        "max_tokens": 4000,
        "temperature": 0,
        "stream": True,
    }
    url = f"{server.base}/v1/chat/completions"
    with httpx.Client(timeout=30) as client, client.stream("POST", url, json=body, headers=server.auth) as response:
        assert response.status_code == 200
        opening_id = response.headers["x-guard-decision-id"]
        lines = response.iter_lines()  # kept: dropping the iterator would close the connection already
        assert next(lines).startswith("data: ")
        _wait_running(server, 1, timeout=10)  # generating: 4000 tokens take ~20 s on this model
    # Leaving the block closed the connection mid-stream.
    _wait_running(server, 0, timeout=5)
    records = httpx.get(f"{server.base}/v1/audit", params={"limit": 20}, headers=server.auth).json()["items"]
    closing = [r for r in records if r.get("parent_id") == opening_id]
    assert len(closing) == 1
    assert closing[0]["http_status"] == 499
    assert closing[0]["kind"] == "stream_close"


def test_a_burst_beyond_the_queue_gets_429_and_the_service_stays_ready(server: Server) -> None:
    async def burst() -> list[httpx.Response]:
        body = {"messages": [{"role": "user", "content": "Go on."}], "max_tokens": 400, "temperature": 0}
        async with httpx.AsyncClient(base_url=server.base, headers=server.auth, timeout=120) as client:
            return list(await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(10))))

    responses = asyncio.run(burst())

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 429}, statuses
    assert statuses.count(200) >= SLOTS
    for response in responses:
        if response.status_code == 429:
            assert response.headers["retry-after"].isdigit()
            assert response.json()["error"]["code"] == "rate_limited"
    _wait_running(server, 0, timeout=60)
    after = httpx.post(
        f"{server.base}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Still there?"}], "max_tokens": 5},
        headers=server.auth,
        timeout=60,
    )
    assert after.status_code == 200
