"""Server-sent events for ``stream: true``, shaped like OpenAI's chunks so the official clients work unchanged.

The order is the audit contract (ARCHITECTURE.md): the opening record is committed before the response starts
(``Pipeline.open_stream``); the text is released sentence by sentence, each only after it has been checked
(``Pipeline.stream_checked``; a violation cuts the stream with ``finish_reason: content_filter``);
``data: [DONE]`` is sent only after the closing record is committed, and a failed commit ends the stream with an
error event instead. A client that disconnects cancels its sequence (its engine slot is freed at the next step)
and gets a 499 closing record.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import msgspec
from litestar import Request
from litestar.response import ServerSentEvent

from guard.api.errors import ErrorBody, ErrorDetail, request_id
from guard.pipeline import ChatOutcome, Pipeline, ServiceUnavailable, Turn

__all__ = ["ChunkWriter", "sse_response", "text_pieces"]

_PIECE = re.compile(r"\s*\S+\s*|\s+")


def text_pieces(text: str) -> list[str]:
    """Checked text, released word by word (each piece keeps its surrounding whitespace)."""
    return _PIECE.findall(text)


class ChunkWriter:
    """Formats one stream's chunks (chat or completion); ``encode`` turns a Struct into an SSE data line."""

    def __init__(
        self,
        *,
        opening: Callable[[], Any] | None,
        content: Callable[[str], Any],
        finish: Callable[[ChatOutcome], Any],
        usage: Callable[[ChatOutcome], Any] | None,
    ) -> None:
        self.opening = opening
        self.content = content
        self.finish = finish
        self.usage = usage


def _encode(chunk: Any) -> str:
    return msgspec.json.encode(chunk).decode()


def _error_event(request: Request[Any, Any, Any], message: str) -> str:
    detail = ErrorDetail(code="service_unavailable", message=message, request_id=request_id(request))
    return _encode(ErrorBody(detail))


async def _events(
    request: Request[Any, Any, Any], pipeline: Pipeline, turn: Turn, writer: ChunkWriter
) -> AsyncIterator[str]:
    closed = False
    try:
        if writer.opening is not None:
            yield _encode(writer.opening())
        try:
            async with contextlib.aclosing(pipeline.stream_checked(turn)) as segments:
                async for segment in segments:  # each segment has passed the output checks
                    for piece in text_pieces(segment):
                        yield _encode(writer.content(piece))
        except ServiceUnavailable as exc:  # already audited as a failed close
            closed = True
            yield _error_event(request, str(exc))
            return
        outcome = turn.outcome
        assert outcome is not None  # set when the checked stream ends
        yield _encode(writer.finish(outcome))
        if writer.usage is not None:
            yield _encode(writer.usage(outcome))
        try:
            await pipeline.close_stream(turn, outcome)
        except ServiceUnavailable as exc:
            closed = True
            yield _error_event(request, str(exc))
            return
        closed = True
        yield "[DONE]"
    finally:
        if not closed:  # the client went away (or the server is stopping): free the slot, record a 499
            with anyio.CancelScope(shield=True):
                await pipeline.abandon_stream(turn)


class _EventStream(ServerSentEvent):
    """Keeps ``text/event-stream``: Litestar would apply the JSON route's media type to a returned stream."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["media_type"] = None
        return super().to_asgi_response(*args, **kwargs)


def sse_response(request: Request[Any, Any, Any], pipeline: Pipeline, turn: Turn, writer: ChunkWriter) -> Any:
    return _EventStream(
        _events(request, pipeline, turn, writer),
        headers={"X-Guard-Decision-Id": turn.decision_id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def created_now() -> int:
    return int(time.time())
