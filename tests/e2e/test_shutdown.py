"""SIGTERM under load against the real `guard serve`: new connections are refused, in-flight requests (streams
too) finish with 200, their audit rows are committed, and the process exits 0.

The server runs a tiny randomly initialised Gemma-2 whose control tokens have zero embeddings, so greedy decoding
runs to max_tokens: the requests are reliably still generating when the signal arrives."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from transformers import AutoTokenizer

from tests.e2e.serving import Server, running_server
from tests.integration.dbdump import audit_rows
from tests.tiny_gemma import tiny_gemma2

pytestmark = pytest.mark.e2e

PLAIN, STREAMED, MAX_TOKENS = 4, 4, 300


@pytest.fixture
def endless_model(guard_home: Path, tmp_path: Path) -> Path:
    target = tmp_path / "gemma-2"
    tokenizer = AutoTokenizer.from_pretrained(guard_home / "dev-models" / "gemma-2")
    model = tiny_gemma2(tokenizer, seed=0, max_position_embeddings=2048)
    with torch.no_grad():
        model.model.embed_tokens.weight[tokenizer.all_special_ids] = 0.0  # never the greedy choice: no early stop
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def _body(stream: bool) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": stream,
    }


async def _plain(client: httpx.AsyncClient) -> tuple[int, str, bool, float]:
    response = await client.post("/v1/chat/completions", json=_body(False))
    done = bool(response.status_code == 200 and response.json()["choices"][0]["message"]["content"])
    return response.status_code, response.headers.get("x-guard-decision-id", ""), done, time.monotonic()


async def _streamed(client: httpx.AsyncClient) -> tuple[int, str, bool, float]:
    async with client.stream("POST", "/v1/chat/completions", json=_body(True)) as response:
        events = [line.removeprefix("data: ") async for line in response.aiter_lines() if line.startswith("data: ")]
    if events[-1:] == ["[DONE]"]:
        assert all("error" not in json.loads(event) for event in events[:-1])
    return response.status_code, response.headers["x-guard-decision-id"], events[-1:] == ["[DONE]"], time.monotonic()


async def _running(server: Server) -> int:
    async with httpx.AsyncClient(timeout=5) as probe:
        return int((await probe.get(f"{server.base}/readyz")).json()["engine"]["running"])


def _refused(server: Server) -> bool:
    host, port = server.base.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def _sigterm_under_load(server: Server) -> tuple[list[tuple[int, str, bool, float]], float, int]:
    assert server.process is not None
    limits = httpx.Limits(max_connections=PLAIN + STREAMED)  # one connection per request
    async with httpx.AsyncClient(base_url=server.base, headers=server.auth, timeout=120, limits=limits) as client:
        calls = [_plain(client) for _ in range(PLAIN)] + [_streamed(client) for _ in range(STREAMED)]
        requests = asyncio.gather(*calls)
        deadline = time.monotonic() + 60
        while await _running(server) < PLAIN + STREAMED:  # every request is generating
            assert time.monotonic() < deadline, "the requests never all ran"
            await asyncio.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        while not _refused(server):  # the listening socket closes within uvicorn's next tick
            assert time.monotonic() < deadline + 5, "new connections were still accepted after SIGTERM"
            await asyncio.sleep(0.05)
        refused_at = time.monotonic()
        results = await requests
    code = await asyncio.to_thread(server.process.wait, 60)
    return list(results), refused_at, code


def test_sigterm_drains_in_flight_requests_and_exits_0(guard_home: Path, endless_model: Path, tmp_path: Path) -> None:
    settings = {"GUARD_MODEL": str(endless_model), "GUARD_SHUTDOWN_TIMEOUT_S": "60"}
    with running_server(guard_home, tmp_path, **settings) as server:
        results, refused_at, code = asyncio.run(_sigterm_under_load(server))

    assert code == 0
    assert [(status, done) for status, _, done, _ in results] == [(200, True)] * (PLAIN + STREAMED)
    assert refused_at < max(finished for *_, finished in results)  # refused while the others were still draining
    rows = asyncio.run(audit_rows(f"sqlite+aiosqlite:///{tmp_path / 'guard.db'}"))
    by_id = {row["decision_id"]: row for row in rows}
    for status, decision_id, _, _ in results:
        assert by_id[decision_id]["http_status"] == status
    for _, opening_id, _, _ in results[PLAIN:]:  # each stream also committed its closing record
        closing = [row for row in rows if row.get("parent_id") == opening_id]
        assert [(row["kind"], row["http_status"]) for row in closing] == [("stream_close", 200)]
    log = server.log.read_text()
    assert "Waiting for connections to close" in log
    assert "Application shutdown complete" in log
