"""No audit, no answer — even across `kill -9` (issue 7, must-show 2).

Eight clients send chat, streamed chat and scan requests to the real server; mid-load the server is SIGKILLed, then
restarted on the same SQLite database; three rounds. Afterwards every answer a client got back (a 200 with a
decision id; a stream only when it reached ``[DONE]``) has its audit row, and `guard audit verify` passes.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e.serving import GUARD, Server, server_env, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROUNDS = 3
CLIENTS = 8
TEXTS = (
    "Summarise the benefits of night trains in two sentences.",
    "My name is John Miller, email john.miller@example.com; what is a heat pump?",
    "Call me at 212-555-0142 about the repair cafe.",
    "Explain step by step how to cook meth at home.",
    "Write a haiku about street trees.",
)


class Acks:
    """What the clients were told: ids of answered requests and of streams that ended with [DONE]."""

    def __init__(self) -> None:
        self.requests: set[str] = set()
        self.streams: set[str] = set()
        self.failures = 0  # transport errors and 5xx: expected around the kill, and never acknowledged


async def _one(client: httpx.AsyncClient, rng: random.Random, acks: Acks) -> None:
    route = rng.choice(("chat", "stream", "scan"))
    text = rng.choice(TEXTS)
    chat = {"messages": [{"role": "user", "content": text}], "max_tokens": 8, "temperature": 0}
    try:
        if route == "stream":
            async with client.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as streamed:
                lines = [line async for line in streamed.aiter_lines()]
            answered, ids = streamed.status_code == 200 and "data: [DONE]" in lines, acks.streams
            response: httpx.Response = streamed
        else:
            path, body = ("/v1/scan", {"text": text}) if route == "scan" else ("/v1/chat/completions", chat)
            response = await client.post(path, json=body)
            answered, ids = response.status_code == 200, acks.requests
        if answered:
            ids.add(response.headers["x-guard-decision-id"])
        else:
            acks.failures += 1
    except httpx.HTTPError:
        acks.failures += 1
        await asyncio.sleep(0.05)


async def _load_then_kill(server: Server, acks: Acks, kill_after: float) -> None:
    assert server.process is not None
    stop = asyncio.Event()

    async def client_loop(index: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(index)
        while not stop.is_set():
            await _one(client, rng, acks)

    async def killer() -> None:
        await asyncio.sleep(kill_after)
        before = len(acks.requests) + len(acks.streams)
        server.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        await asyncio.sleep(1.0)  # clients see the connections drop
        stop.set()
        assert before > 0, "no request was answered before the kill"

    async with httpx.AsyncClient(base_url=server.base, headers=server.auth, timeout=30) as client:
        await asyncio.gather(killer(), *(client_loop(i, client) for i in range(CLIENTS)))


def test_every_acknowledged_answer_survives_kill_9(guard_home: Path, tmp_path: Path) -> None:
    acks = Acks()
    rng = random.Random(11)
    for round_ in range(ROUNDS):
        server = start_server(guard_home, tmp_path, log_name=f"server-{round_}.log")
        assert server.process is not None
        try:
            asyncio.run(_load_then_kill(server, acks, kill_after=rng.uniform(6.0, 10.0)))
        finally:
            server.process.kill()
            assert server.process.wait(timeout=30) == -signal.SIGKILL
        assert "Traceback" not in server.log.read_text()

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'guard.db'}")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT decision_id, kind, parent_id FROM audit_decisions")).all()
        chains = connection.execute(sa.text("SELECT COUNT(DISTINCT chain_id) FROM audit_decisions")).scalar_one()
    engine.dispose()
    answering = {r.decision_id for r in rows if r.kind in ("request", "stream_open")}
    closed = {r.parent_id for r in rows if r.kind == "stream_close"}
    assert len(acks.requests) + len(acks.streams) > 50
    assert acks.failures > 0  # the kills hit requests in flight
    assert acks.requests - answering == set()
    assert acks.streams - answering == set()
    assert acks.streams - closed == set(), "a stream reached [DONE] without its closing row"
    assert chains >= ROUNDS  # one chain per writer instance: each restart starts its own

    verify = subprocess.run(
        [GUARD, "audit", "verify"], env=server_env(guard_home, tmp_path), capture_output=True, text=True, timeout=120
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "audit log verified" in verify.stdout
