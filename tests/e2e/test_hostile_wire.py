"""Hostile bytes on the wire to the real `guard serve`: what a test client cannot send. No 5xx ever; the app's own
refusals are the JSON error shape; refusals by the HTTP server itself (h11) only need to be 4xx or a closed
connection; and the server keeps answering afterwards."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.serving import Server, running_server

pytestmark = pytest.mark.e2e

MARK = b"qzwire5c1e"


@pytest.fixture(scope="module")
def server(guard_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(guard_home, tmp_path_factory.mktemp("wire")) as running:
        yield running


def _send(server: Server, data: bytes, *, close_write: bool = False, timeout: float = 20) -> tuple[int | None, bytes]:
    """Send raw bytes; the response status (None: the server closed without answering) and the whole response."""
    address = urlsplit(server.base)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if close_write:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):  # the server already refused and closed
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    response = b"".join(chunks)
    if not response.startswith(b"HTTP/1.1 "):
        return None, response
    return int(response[9:12]), response


def _request(server: Server, body: bytes, *, headers: dict[str, str] | None = None, path: str = "/v1/scan") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", f"Authorization: {server.auth['Authorization']}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines += ["Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _app_error(response: bytes) -> dict[str, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"x-request-id" in head.lower()
    if b"transfer-encoding: chunked" in head.lower():  # de-chunk the (small) body
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    answer = json.loads(body)
    assert set(answer) == {"error", "request_id"}
    error: dict[str, str] = answer["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert MARK not in response
    return error


def _still_serving(server: Server) -> None:
    response = httpx.post(f"{server.base}/v1/scan", json={"text": "still here"}, headers=server.auth, timeout=30)
    assert response.status_code == 200, response.text


def test_invalid_utf8_body(server: Server) -> None:
    body = b'{"text": "\xff\xfe\xc0\xaf ' + MARK + b'"}'
    status, response = _send(
        server, _request(server, body, headers={"Content-Type": "application/json", "Content-Length": str(len(body))})
    )
    assert status == 400
    assert "UTF-8" in _app_error(response)["message"]
    _still_serving(server)


def test_body_over_the_limit_with_and_without_content_length(server: Server) -> None:
    big = b'{"text": "' + MARK + b"a" * (70 * 1024) + b'"}'
    status, response = _send(
        server, _request(server, big, headers={"Content-Type": "application/json", "Content-Length": str(len(big))})
    )
    assert status == 413
    _app_error(response)
    # chunked: no Content-Length to refuse up front, so the limit must apply while reading
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part) for part in (big[i : i + 8192] for i in range(0, len(big), 8192))
    )
    status, response = _send(
        server,
        _request(
            server, chunks + b"0\r\n\r\n", headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        ),
    )
    assert status == 413
    _app_error(response)
    # a Content-Length that claims far more than the limit is refused before any of it is read
    status, response = _send(
        server,
        _request(server, b"{", headers={"Content-Type": "application/json", "Content-Length": str(10**12)}),
        close_write=True,
    )
    assert status == 413 or status is None
    _still_serving(server)


def test_truncated_body_then_hang_up(server: Server) -> None:
    body = b'{"text": "' + MARK
    status, _ = _send(
        server,
        _request(server, body, headers={"Content-Type": "application/json", "Content-Length": "1000"}),
        close_write=True,
    )
    assert status is None or 400 <= status < 500
    _still_serving(server)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Huge": "a" * 200_000},  # one huge header
        {f"X-Many-{i}": "b" * 100 for i in range(2_000)},  # very many headers
    ],
    ids=["huge header", "many headers"],
)
def test_huge_headers(server: Server, headers: dict[str, str]) -> None:
    body = b'{"text": "hi"}'
    status, _ = _send(
        server,
        _request(
            server, body, headers={**headers, "Content-Type": "application/json", "Content-Length": str(len(body))}
        ),
    )
    assert status is None or 400 <= status < 500 or status == 200  # h11 refuses (431/400) or closes; never a 5xx
    _still_serving(server)


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /v1/scan HTTP/9.9\r\nHost: x\r\n\r\n",
        b"POST /v1/scan\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nX-Bad: \xff\xfe\r\nContent-Length: 2\r\n\r\n{}",
    ],
    ids=["not http", "bad version", "nul in target", "negative length", "length and chunked", "binary header"],
)
def test_protocol_garbage(server: Server, raw: bytes) -> None:
    status, _ = _send(server, raw, close_write=True)
    assert status is None or status < 500
    _still_serving(server)
