"""Server-sent events for ``stream: true``, shaped like OpenAI's chunks so the official clients work unchanged.

The one SSE writer for chat and raw completions: the pipeline hands down a stream as one iterator of typed events
(:mod:`guard.pipeline.streaming`) and this module only serialises them; a :class:`ChunkShape` holds what differs
between a chat chunk and a completion chunk. Getting the first event (``Opened``: the opening record is committed)
happens before the response starts, so refusals are ordinary JSON errors. Then each released segment goes out word
by word, the finish chunk (with ``guard``) and the usage chunk when asked, then ``data: [DONE]`` once the closing
record is committed, or an error event instead. A client that disconnects closes the iterator: the pipeline cancels
its sequence (its engine slot is freed at the next step) and records a 499 close. So does a client that stops
reading: once its send buffer has stayed full for ``GUARD_SEND_TIMEOUT_S`` the server cuts it
(:mod:`guard.api.connections`), having first marked the stream stalled, so the close says ``client_stalled``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec
from litestar import Request
from litestar.response import ServerSentEvent

from guard.api.answers import created_now, guard_info, usage
from guard.api.connections import on_send_timeout
from guard.api.errors import ErrorBody, error_detail, request_id
from guard.api.schemas import StreamOptions
from guard.pipeline import Closed, Failed, Finished, Opened, StreamEvent, Text

__all__ = ["ChunkShape", "buffered_sse", "sse_response", "text_pieces"]

_PIECE = re.compile(r"\s*\S+\s*|\s+")


def text_pieces(text: str) -> list[str]:
    """Checked text, released word by word (each piece keeps its surrounding whitespace)."""
    return _PIECE.findall(text)


@dataclass(frozen=True, slots=True)
class ChunkShape:
    """What tells one kind of stream's chunks from another's (chat or completion); the rest is the one writer."""

    id_prefix: str
    """Before the opening record's id in every chunk's ``id`` (``chatcmpl-``, ``cmpl-``)."""
    chunk: Callable[..., Any]
    """The chunk Struct (called with ``id``, ``created``, ``model``, ``object``, ``choices`` and extras)."""
    object: str
    content: Callable[[str, Any, Callable[[int], bytes]], Any]
    """The choice that carries a piece of text (with the engine's logprob entries of the tokens it completes, and
    how to spell a token)."""
    finish: Callable[[str], Any]
    """The choice that carries the finish reason."""
    opening: Callable[[], Any] | None = None
    """The choice of the chunk sent first, before any text (chat: the assistant role)."""


def _encode(chunk: Any) -> str:
    return msgspec.json.encode(chunk).decode()


def _error_event(request: Request[Any, Any, Any], message: str) -> str:
    return _encode(ErrorBody(error_detail(503, message), request_id=request_id(request)))


async def _serialised(
    request: Request[Any, Any, Any],
    opened: Opened,
    events: AsyncGenerator[StreamEvent, None],
    shape: ChunkShape,
    model: str,
    include_usage: bool,
    token_bytes: Callable[[int], bytes],
) -> AsyncIterator[str]:
    chunk_id, created = f"{shape.id_prefix}{opened.decision_id}", created_now()

    def chunk(choices: list[Any], **extra: Any) -> str:
        return _encode(
            shape.chunk(id=chunk_id, created=created, model=model, object=shape.object, choices=choices, **extra)
        )

    try:
        if shape.opening is not None:
            yield chunk([shape.opening()])
        async for event in events:
            if isinstance(event, Text):
                logprobs = event.logprobs or None  # a segment's entries ride on its first piece
                for piece in text_pieces(event.text):
                    yield chunk([shape.content(piece, logprobs, token_bytes)])
                    logprobs = None
            elif isinstance(event, Finished):
                yield chunk([shape.finish(event.outcome.finish_reason)], guard=guard_info(event.outcome))
                if include_usage:
                    yield chunk([], usage=usage(event.outcome))
            elif isinstance(event, Closed):
                yield "[DONE]"
            elif isinstance(event, Failed):
                yield _error_event(request, event.message)
    finally:  # however it ends, the pipeline closes the stream (a 499 close if it was not answered)
        on_send_timeout(request.scope, None)
        with anyio.CancelScope(shield=True):
            await events.aclose()


class _EventStream(ServerSentEvent):
    """Keeps ``text/event-stream``: Litestar would apply the JSON route's media type to a returned stream."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["media_type"] = None
        return super().to_asgi_response(*args, **kwargs)


async def sse_response(
    request: Request[Any, Any, Any],
    events: AsyncGenerator[StreamEvent, None],
    shape: ChunkShape,
    *,
    model: str,
    options: StreamOptions | None,
    token_bytes: Callable[[int], bytes],
) -> Any:
    """The streamed answer; raises the pipeline's refusal (before any byte is sent) if the stream does not open."""
    opened = await anext(events)
    if not isinstance(opened, Opened):
        raise TypeError(f"a stream opens with Opened, not {type(opened).__name__}")
    include_usage = bool(options and options.include_usage)
    on_send_timeout(request.scope, opened.client.mark_stalled)  # told before a client that stopped reading is cut
    return _EventStream(
        _serialised(request, opened, events, shape, model, include_usage, token_bytes),
        headers={"X-Guard-Decision-Id": opened.decision_id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def buffered_sse(chunks: list[Any], decision_id: str) -> Any:
    """A stream of an answer that was checked whole and whose record is committed (tool calls, structured
    output): its chunks, then ``data: [DONE]``."""

    async def events() -> AsyncIterator[str]:
        for chunk in chunks:
            yield _encode(chunk)
        yield "[DONE]"

    return _EventStream(
        events(),
        headers={"X-Guard-Decision-Id": decision_id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
