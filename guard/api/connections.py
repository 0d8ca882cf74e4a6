"""Connection limits for ``guard serve``: header, body and send timeouts, a bound on open connections, JSON refusals.

uvicorn (0.54) times out only idle keep-alive connections: a client that sends its headers or its body a byte at a
time, or never reads a streamed answer, holds its connection (and a stream its engine slot) for ever; its
``limit_concurrency`` answers plain text. These limits need the connection before any request exists, so they live in
uvicorn's HTTP protocol (a subclass of its httptools protocol, handed to ``uvicorn.run(http=...)``):

- header timeout: from a connection's start, or a request's first byte, to its complete headers — past it a 408
  (a connection that never sent a byte is just closed);
- body timeout: from the headers to the end of the body — past it a 408 (not while the app is slow to read it);
- send timeout: the socket's send buffer (``SO_SNDBUF``) and the transport's write buffer are bounded; a client
  that leaves them full that long is cut (``abort``: the buffered bytes are dropped) and the app's ``on_send_timeout``
  callback told first, so a stream records why it ended (its generation is cancelled like any abandoned stream's);
- open connections: beyond the bound the connection that has been idle longest (no request in progress, so never
  used or kept alive between requests) is closed to make room; with none idle the request gets a JSON 503.

Every refusal is the API's JSON error (``{"error": {...}, "request_id"}``, header ``X-Request-Id``), with
``Connection: close``. The app reaches the connection through the scope's ``extensions["guard.connection"]``.
"""

from __future__ import annotations

import contextlib
import http
import logging
import socket
import uuid
from asyncio import TimerHandle, Transport
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from guard.api.errors import ErrorBody, error_detail
from guard.settings import ConnectionSettings

__all__ = ["EXTENSION", "LimitedHttpProtocol", "on_send_timeout", "protocol_for", "refusal"]

EXTENSION = "guard.connection"
"""The scope's ``extensions`` key of a connection's shared dict (``on_send_timeout``: a callable, or absent)."""

logger = logging.getLogger(__name__)


def refusal(status: int, message: str, code: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of a connection-level refusal, in the API's error shape."""
    rid = uuid.uuid4().hex
    body = msgspec.json.encode(ErrorBody(error_detail(status, message, code=code), request_id=rid))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", rid.encode()),
        (b"connection", b"close"),
    ]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    return headers, body


def _raw(status: int, message: str, code: str) -> bytes:
    headers, body = refusal(status, message, code)
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}".encode()]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _too_many_connections(scope: Any, receive: Any, send: Any) -> None:
    """The app a request gets when every open connection is busy (uvicorn's own would be plain text)."""
    headers, body = refusal(503, "too many open connections; retry shortly", "too_many_connections")
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def on_send_timeout(scope: Any, callback: Callable[[], None] | None) -> None:
    """Have the connection of ``scope`` call ``callback`` before it cuts a client that stopped reading (``None``:
    forget it). A no-op under a server without these limits (the test client)."""
    shared = scope.get("extensions", {}).get(EXTENSION)
    if isinstance(shared, dict):
        if callback is None:
            shared.pop("on_send_timeout", None)
        else:
            shared["on_send_timeout"] = callback


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of the module docstring; :func:`protocol_for` binds them."""

    limits: ClassVar[ConnectionSettings] = ConnectionSettings()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit_concurrency = None  # replaced by the bound on open connections
        self.timeout_keep_alive = self.limits.keep_alive_timeout_s
        self._shared: dict[object, object] = {}
        self._read_deadline: TimerHandle | None = None
        self._send_deadline: TimerHandle | None = None
        self._parsing = False  # a request's first bytes arrived, its headers are not complete
        self._idle_since = 0.0

    # -- connection ---------------------------------------------------------------------------------------------

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        transport.set_write_buffer_limits(high=self.limits.send_buffer_bytes)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # the kernel's share of what a client that does not read can leave buffered
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.send_buffer_bytes)
        self._arm_read(self.limits.header_timeout_s, self._header_timeout)
        if self._over_limit():
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read()
        self._cancel_send()
        super().connection_lost(exc)

    def _open(self) -> int:
        return sum(1 for c in self.connections if not c.transport.is_closing())  # type: ignore[attr-defined]

    def _over_limit(self) -> bool:
        """More connections open than the bound (those being closed do not count)."""
        return len(self.connections) > self.limits.max_connections and self._open() > self.limits.max_connections

    def _idle(self) -> bool:
        return (
            not self._parsing
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
            and not self.transport.is_closing()
        )

    def _make_room(self) -> bool:
        """Close the connection idle longest (not this one); False if every other one is busy."""
        idle = [c for c in self.connections if isinstance(c, LimitedHttpProtocol) and c is not self and c._idle()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since)
        logger.debug("closing an idle connection: %d open", len(self.connections))
        oldest.transport.close()
        return True

    # -- reading the request ------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsing = True
        self.scope["extensions"] = {EXTENSION: self._shared}
        if self._read_deadline is None:  # a kept-alive connection's next request
            self._arm_read(self.limits.header_timeout_s, self._header_timeout)

    def on_headers_complete(self) -> None:
        self._parsing = False
        self._cancel_read()
        if self._over_limit() and not self._make_room():
            logger.warning("refused a request: %d connections open, all busy", self._open())
            app, self.app = self.app, _too_many_connections
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        self._arm_read(self.limits.body_timeout_s, self._body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_read()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = self.loop.time()

    def _arm_read(self, seconds: float, handler: Callable[[], None]) -> None:
        self._cancel_read()
        self._read_deadline = self.loop.call_later(seconds, handler)

    def _cancel_read(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _header_timeout(self) -> None:
        self._read_deadline = None
        if self.transport.is_closing():
            return
        if not self._parsing:  # never sent a byte: nothing to answer
            self.transport.close()
            return
        logger.warning("header timeout: closing a connection after %.1f s", self.limits.header_timeout_s)
        self._refuse_read("request headers not received in time")

    def _body_timeout(self) -> None:
        self._read_deadline = None
        if self.transport.is_closing() or self.cycle is None or not self.cycle.more_body:
            return
        if self.flow.read_paused:  # the app has not read what it has: the wait is ours, not the client's
            self._arm_read(self.limits.body_timeout_s, self._body_timeout)
            return
        logger.warning("body timeout: closing a connection after %.1f s", self.limits.body_timeout_s)
        self._refuse_read("request body not received in time")

    def _refuse_read(self, message: str) -> None:
        """Answer 408 (unless a response has started) and close; the app, if it waits for the body, sees a
        disconnect and its answer goes nowhere."""
        cycle = self.cycle if self.cycle is not None and not self.cycle.response_complete else None
        if cycle is None or not cycle.response_started:
            self.transport.write(_raw(408, message, "request_timeout"))
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    # -- writing the response -----------------------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(self.limits.send_timeout_s, self._send_timeout)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_send()

    def _cancel_send(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _send_timeout(self) -> None:
        """The client has not taken a byte for ``send_timeout_s`` with its buffers full: cut it."""
        self._send_deadline = None
        if self.transport.is_closing():
            return
        logger.warning("send timeout: cutting a client that stopped reading (%.1f s)", self.limits.send_timeout_s)
        callback = self._shared.pop("on_send_timeout", None)
        if callable(callback) and self.cycle is not None and not self.cycle.response_complete:
            callback()
        self.transport.abort()  # drops what is buffered: its memory is freed now


def protocol_for(limits: ConnectionSettings) -> type[LimitedHttpProtocol]:
    """The protocol class that ``uvicorn.run(http=...)`` takes, holding ``limits``."""
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})
