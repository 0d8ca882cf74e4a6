"""A recording reverse proxy in front of an upstream: tests assert what the upstream received and answered."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import uvicorn

__all__ = ["RecordingProxy"]


def _authorization(scope: dict[str, Any]) -> dict[str, str]:
    """The request's Authorization header, passed on (an upstream that is a guard wants its key)."""
    values = [value.decode() for name, value in scope["headers"] if name.lower() == b"authorization"]
    return {"authorization": values[0]} if values else {}


class RecordingProxy:
    """A minimal ASGI reverse proxy that records each request body and streams the upstream's answer back."""

    def __init__(self, upstream: str, port: int) -> None:
        self.upstream = upstream
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.received: list[dict[str, Any]] = []
        self.answered: list[str] = []
        """Each answer's body as the upstream sent it (a stream's server-sent events as one text)."""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if body:
            self.received.append(json.loads(body))
        async with (
            httpx.AsyncClient(timeout=120) as client,
            client.stream(
                scope["method"],
                self.upstream + scope["path"],
                content=body,
                headers={"content-type": "application/json", **_authorization(scope)},
            ) as response,
        ):
            headers = [(b"content-type", response.headers.get("content-type", "application/json").encode())]
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            answer = b""
            async for chunk in response.aiter_raw():
                answer += chunk
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            self.answered.append(answer.decode("utf-8", "replace"))
            await send({"type": "http.response.body", "body": b""})

    def start(self) -> None:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)
