"""The connection limits of :mod:`guard.api.connections` on a real uvicorn server (in this process, on a free port)
in front of a minimal ASGI app: timeouts answer the JSON 408, a connection beyond the bound makes room by closing the
longest-idle one or gets the JSON 503, and a client that stops reading is cut after the callback is told."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from guard.api.connections import on_send_timeout, protocol_for
from guard.settings import ConnectionSettings

pytestmark = pytest.mark.unit

STALLED: list[str] = []


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":  # far more than the buffers hold, to a client that never reads
        on_send_timeout(scope, lambda: STALLED.append("cut"))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for _ in range(2000):
            await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    limits = ConnectionSettings(
        max_connections=4, header_timeout_s=0.5, body_timeout_s=0.5, send_timeout_s=0.5, send_buffer_bytes=4096
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    config = uvicorn.Config(_app, host="127.0.0.1", port=free, http=protocol_for(limits), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield free
    server.should_exit = True
    thread.join(timeout=10)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def _json_error(response: bytes, status: int) -> dict[str, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), response[:200]
    assert b"x-request-id: " in head
    assert b"connection: close" in head
    answer = json.loads(body)
    assert set(answer) == {"error", "request_id"}
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    return dict(answer["error"])


def _get(port: int) -> bytes:
    with _connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _read_all(sock)


def test_slow_headers_get_a_json_408(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        response = _read_all(sock)
    assert 0.4 < time.monotonic() - started < 3
    assert _json_error(response, 408)["code"] == "request_timeout"


def test_a_connection_that_never_sends_is_closed(port: int) -> None:
    with _connect(port) as sock:
        assert _read_all(sock) == b""


def test_slow_body_gets_a_json_408(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        response = _read_all(sock)
    assert _json_error(response, 408)["type"] == "invalid_request_error"
    assert _get(port).endswith(b"ok")


def test_idle_connections_make_room_and_busy_ones_refuse(port: int) -> None:
    idle = [_connect(port) for _ in range(4)]
    time.sleep(0.1)
    assert _get(port).endswith(b"ok")  # beyond the bound: the longest-idle connection was closed for it
    idle[0].settimeout(1)
    assert idle[0].recv(10) == b""
    for sock in idle:
        sock.close()
    time.sleep(0.1)
    busy = [_connect(port) for _ in range(4)]
    for sock in busy:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # headers under way: not idle
    time.sleep(0.1)
    error = _json_error(_get(port), 503)
    assert error["code"] == "too_many_connections"
    assert error["type"] == "server_error"
    for sock in busy:
        sock.close()
    time.sleep(0.1)
    assert _get(port).endswith(b"ok")


def test_a_client_that_stops_reading_is_cut(port: int) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 5
    while not STALLED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert STALLED == ["cut"]
    received = _read_all(sock)  # what was in flight, then the cut
    sock.close()
    assert len(received) < 2000 * 1024
