"""Connection-level abuse against the real `guard serve` (issue 21): 500 idle connections (reopened when closed),
20 slow-header and 20 slow-body clients and 20 streaming clients that never read, all at once, while 8 normal
clients get only 200s; the server's RSS stays within its idle RSS + 256 MB; the stalled streams are cut, their
engine slots freed and their closes audited (`client_stalled`); with every connection busy, one more request gets
the JSON 503. The latency cost of the abuse is measured by benchmarks/connections.py, not here."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from tests.e2e.serving import Server, running_server

pytestmark = pytest.mark.e2e

MAX_CONNECTIONS = 400
LIMITS = {
    "GUARD_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "GUARD_HEADER_TIMEOUT_S": "3",
    "GUARD_BODY_TIMEOUT_S": "3",
    "GUARD_SEND_TIMEOUT_S": "2",
    "GUARD_SEND_BUFFER_BYTES": "4096",
    "GUARD_MAX_NEW_TOKENS": "2048",
}
ABUSE_S = 8.0
STALLED = 20
CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "temperature": 0}
LONG_STREAM = {
    "messages": [{"role": "user", "content": "Write forever."}],
    "max_tokens": 2000,  # far more than the bounded buffers hold, and far longer than the test runs
    "temperature": 0,
    "stream": True,
}


class Abuse:
    """The abusive clients, on one event loop; they run until ``stop`` is set."""

    def __init__(self, server: Server) -> None:
        address = urlsplit(server.base)
        self.host, self.port = str(address.hostname), int(address.port or 80)
        self.auth = server.auth["Authorization"]
        self.stop = asyncio.Event()
        self.statuses: Counter[str] = Counter()  # what the slow clients were answered
        self.idle_closed = 0
        self.stalled: list[socket.socket] = []

    async def idle(self) -> None:
        """Connect and send nothing; when the server closes it, reconnect (after a breath)."""
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            closed = asyncio.create_task(reader.read())
            await asyncio.wait([closed, asyncio.create_task(self.stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            if closed.done():
                self.idle_closed += 1
            closed.cancel()
            writer.close()
            await asyncio.sleep(0.3)

    async def slow(self, head: bytes, drip: bytes) -> None:
        """Send ``head``, then ``drip`` every 0.5 s until the server answers or closes; record the status."""
        while not self.stop.is_set():
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(head)
            answer = asyncio.create_task(reader.read(65536))
            while not answer.done() and not self.stop.is_set():
                try:
                    writer.write(drip)
                    await writer.drain()
                except OSError:
                    break
                await asyncio.wait([answer], timeout=0.5)
            if answer.done() and not answer.cancelled() and answer.exception() is None:
                response = answer.result()
                self.statuses[_status_and_code(response)] += 1
            answer.cancel()
            writer.close()

    def open_stalled(self) -> None:
        """Streams whose client never reads a byte (small receive buffers, so the server's fill soon)."""
        body = json.dumps(LONG_STREAM).encode()
        request = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: {self.auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        for _ in range(STALLED):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((self.host, self.port))
            sock.sendall(request)
            self.stalled.append(sock)


def _status_and_code(response: bytes) -> str:
    """``408 request_timeout`` for a JSON refusal; the raw status line otherwise; ``closed`` for no answer."""
    if not response:
        return "closed"
    head, _, body = response.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode()
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and set(answer) == {"error", "request_id"} and b"x-request-id" in head.lower():
        return f"{status} {answer['error']['code']}"
    return head.split(b"\r\n", 1)[0].decode(errors="replace")


async def _normal(server: Server, stop: asyncio.Event, statuses: Counter[int], index: int) -> None:
    """A well-behaved client: scans, short chats and short streams in turn, on keep-alive connections."""
    async with httpx.AsyncClient(base_url=server.base, headers=server.auth, timeout=60) as client:
        turn = index
        while not stop.is_set():
            turn += 1
            if turn % 3 == 0:
                response = await client.post("/v1/scan", json={"text": f"Client {index} asks about Paris."})
                statuses[response.status_code] += 1
            elif turn % 3 == 1:
                response = await client.post("/v1/chat/completions", json=CHAT)
                statuses[response.status_code] += 1
            else:
                async with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as streamed:
                    text = b"".join([chunk async for chunk in streamed.aiter_bytes()])
                    statuses[streamed.status_code] += 1
                    assert text.rstrip().endswith(b"data: [DONE]"), text[-200:]


async def _warm(server: Server) -> None:
    """The same load without the abuse (the normal clients and 20 streams that are read), so what generation at
    this concurrency allocates (engine batches, check workers) is in the idle RSS the abuse is held to."""
    stop, statuses = asyncio.Event(), Counter[int]()

    async def stream(client: httpx.AsyncClient) -> None:
        async with client.stream("POST", "/v1/chat/completions", json={**LONG_STREAM, "max_tokens": 300}) as answer:
            statuses[answer.status_code] += 1
            async for _ in answer.aiter_bytes():
                pass

    normal = [asyncio.create_task(_normal(server, stop, statuses, i)) for i in range(8)]
    async with httpx.AsyncClient(base_url=server.base, headers=server.auth, timeout=120) as client:
        await asyncio.gather(*(stream(client) for _ in range(STALLED)))
    stop.set()
    await asyncio.gather(*normal)
    assert set(statuses) == {200}, statuses


def _rss_watch(pid: int, stop: asyncio.Event, peak: list[int]) -> asyncio.Task[None]:
    process = psutil.Process(pid)

    async def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            await asyncio.sleep(0.2)

    return asyncio.create_task(sample())


async def _running_once_cut(server: Server, running: list[int]) -> None:
    """Once every stalled stream's close is audited, how many sequences the engine still runs: only the normal
    clients' (at most 8) if the cut cancelled the stalled streams' generations (2000 tokens each otherwise). The wait
    is long: a stream is cut only once its buffers are full (tens of tokens at a 28-row decode on 2 cores) and its
    send has then waited GUARD_SEND_TIMEOUT_S; a CI run saw this take longer than 15 s."""
    async with httpx.AsyncClient(base_url=server.base, headers=server.auth, timeout=30) as client:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            rows = (await client.get("/v1/audit", params={"outcome": "client_stalled", "limit": 100})).json()["items"]
            if len(rows) >= STALLED:
                running.append((await client.get("/readyz")).json()["engine"]["running"])
                return
            await asyncio.sleep(0.25)


async def _abuse_while_normal_clients_run(
    server: Server, abuse: Abuse, pid: int
) -> tuple[Counter[int], int, list[int]]:
    statuses: Counter[int] = Counter()
    peak, running = [0], list[int]()
    watch = _rss_watch(pid, abuse.stop, peak)
    slow_header = b"POST /v1/scan HTTP/1.1\r\nHost: x\r\n"
    slow_body = (
        f"POST /v1/scan HTTP/1.1\r\nHost: x\r\nAuthorization: {abuse.auth}\r\nContent-Type: application/json\r\n"
        "Content-Length: 4000\r\n\r\n"
    ).encode()
    tasks = [asyncio.create_task(abuse.idle()) for _ in range(500)]
    await asyncio.sleep(1)  # the idle flood is in place first
    abuse.open_stalled()
    tasks.append(asyncio.create_task(_running_once_cut(server, running)))
    tasks += [asyncio.create_task(abuse.slow(slow_header, b"X-Slow: 1\r\n")) for _ in range(20)]
    tasks += [asyncio.create_task(abuse.slow(slow_body, b" ")) for _ in range(20)]
    tasks += [asyncio.create_task(_normal(server, abuse.stop, statuses, i)) for i in range(8)]
    await asyncio.sleep(ABUSE_S)
    abuse.stop.set()
    await asyncio.gather(*tasks, watch)
    return statuses, peak[0], running


def _drain(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError:  # reset
        pass
    sock.close()
    return b"".join(chunks)


def _engine_running(server: Server) -> int:
    return int(httpx.get(f"{server.base}/readyz", timeout=10).json()["engine"]["running"])


def _audit(server: Server, **params: Any) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.base}/v1/audit", params={"limit": 500, **params}, headers=server.auth, timeout=30)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def _busy_then_one_more(abuse: Abuse) -> bytes:
    """Fill the bound with connections whose headers are under way (busy, so none can be closed to make room),
    then send one whole request more."""
    busy = []
    try:
        for _ in range(MAX_CONNECTIONS):
            sock = socket.create_connection((abuse.host, abuse.port), timeout=10)
            sock.sendall(b"POST /v1/scan HTTP/1.1\r\nHost: x\r\n")
            busy.append(sock)
        time.sleep(0.2)
        with socket.create_connection((abuse.host, abuse.port), timeout=10) as sock:
            sock.sendall(f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: {abuse.auth}\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)
    finally:
        for sock in busy:
            sock.close()


def test_abusive_connections_do_not_starve_normal_clients(
    guard_home: Path, endless_model: Path, tmp_path: Path
) -> None:
    with running_server(guard_home, tmp_path, GUARD_MODEL=str(endless_model), **LIMITS) as server:
        assert server.process is not None
        for _ in range(2):  # this load alone raised RSS ~250 MB from its first round to its second (allocator
            asyncio.run(_warm(server))  # arenas and caches); the idle flood alone then adds nothing measurable
        idle_rss = psutil.Process(server.process.pid).memory_info().rss

        abuse = Abuse(server)
        statuses, peak_rss, cut = asyncio.run(_abuse_while_normal_clients_run(server, abuse, server.process.pid))

        assert set(statuses) == {200}, statuses
        # The normal clients kept being answered: at least one answer per client on average during the abuse. A
        # liveness bound, not a speed one: on an AVX2-only 2-core host they got 21 answers in the 8 s (10 before the
        # lean Gemma-2 forward), on the AVX-512 hosts before it more than 24.
        assert sum(statuses.values()) >= 8, statuses
        assert peak_rss <= idle_rss + 256 * 2**20, (idle_rss, peak_rss)
        # the idle flood was held to the bound (the longest-idle closed to make room) or timed out
        assert abuse.idle_closed >= 100
        # slow headers and slow bodies: answered 408 in the JSON error shape (or closed while being answered)
        assert abuse.statuses["408 request_timeout"] >= 40, abuse.statuses
        assert set(abuse.statuses) <= {"408 request_timeout", "closed"}, abuse.statuses

        # the stalled streams were cut, their engine slots are free and each close says why
        deadline = time.monotonic() + 20
        while len(stalled := _audit(server, outcome="client_stalled")) < STALLED and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(stalled) == STALLED, [(r["outcome"], r["http_status"]) for r in stalled]
        assert {(r["kind"], r["http_status"]) for r in stalled} == {("stream_close", 499)}
        assert cut, "the stalled streams were not all cut during the abuse"
        assert cut[0] <= 8, cut  # the cut cancelled their generations
        assert _engine_running(server) == 0
        for sock in abuse.stalled:  # what was in flight, then the end: never the whole answer
            assert b"data: [DONE]" not in _drain(sock)

        # every connection busy: one more request gets the JSON refusal, and the service answers after
        status = _status_and_code(_busy_then_one_more(abuse))
        assert status == "503 too_many_connections", status
        answer = httpx.post(f"{server.base}/v1/scan", json={"text": "still here"}, headers=server.auth, timeout=30)
        assert answer.status_code == 200, answer.text
