"""A remote OpenAI-compatible engine (vLLM, TGI, ``transformers serve``) behind the :class:`Engine` protocol.

Only the tokenizer and chat template load here: guard renders the (already redacted) conversation itself, so the
control-token neutralisation of :mod:`guard.engine.chat_template` still applies, and counts tokens itself. The
rendered prompt text goes to the upstream's legacy ``POST /v1/completions``, unstreamed or streamed (SSE).

Failure handling: connection errors (the upstream never accepted the request) are retried with exponential
backoff; nothing is retried once the upstream accepted a request (generation is not idempotent). Consecutive
failed connections open a circuit breaker: while open, requests fail at once and :meth:`RemoteEngine.stats`
reports unhealthy (``/readyz`` not ready); after the cooldown one trial request (or the readiness probe) may pass,
and its success closes the breaker. Every failure surfaces as :class:`EngineError` (the gateway's 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from guard.engine.base import (
    ChatMessage,
    EngineBusy,
    EngineError,
    EngineStats,
    EngineUnavailable,
    FinishReason,
    Generation,
    Prompt,
    PromptTooLong,
    SamplingParams,
    StreamDelta,
    collect,
)
from guard.engine.chat_template import render_chat, supports_system_role
from guard.engine.grammar import InvalidGrammar
from guard.engine.tool_format import FunctionSpec
from guard.settings import EngineSettings

__all__ = ["CircuitBreaker", "RemoteEngine", "RemoteStream", "StopStrings"]

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.1
"""The first retry waits this long; each further retry doubles it."""

_closing: set[asyncio.Future[Any]] = set()  # responses being closed after a cancel (a reference keeps them alive)


class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive connection failures → half-open after ``cooldown_s`` (one
    trial call at a time) → closed on a success, open again on a failure."""

    def __init__(self, threshold: int, cooldown_s: float) -> None:
        self.threshold = max(1, threshold)
        self.cooldown_s = cooldown_s
        self.failures = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None
        self.last_error: str | None = None

    @property
    def open(self) -> bool:
        """Open and still cooling down: calls fail fast and the engine is not healthy."""
        return self._opened_at is not None and time.monotonic() - self._opened_at < self.cooldown_s

    def admit(self) -> bool:
        """Whether a call may go upstream now (closed, or the one trial call of a half-open breaker)."""
        if self._opened_at is None:
            return True
        now = time.monotonic()
        if self.open or (self._trial_at is not None and now - self._trial_at < self.cooldown_s):
            return False  # a trial is out (one that never reports back, e.g. cancelled unsent, expires)
        self._trial_at = now
        return True

    def succeeded(self) -> None:
        if self._opened_at is not None:
            logger.info("remote engine reachable again: circuit breaker closed")
        self.failures, self._opened_at, self._trial_at, self.last_error = 0, None, None, None

    def failed(self, error: str, *, connection: bool) -> None:
        """Record a failed call; only connection failures count towards opening the breaker."""
        self.last_error = error
        self._trial_at = None
        if not connection:
            return
        self.failures += 1
        if self.failures >= self.threshold or self._opened_at is not None:
            if self._opened_at is None or not self.open:
                logger.warning(
                    "remote engine unreachable (%s): circuit breaker open for %.0f s", error, self.cooldown_s
                )
            self._opened_at = time.monotonic()


class RemoteStream:
    """One request's deltas from the upstream; the HTTP call starts on first iteration, :meth:`cancel` closes it."""

    def __init__(self, deltas: AsyncIterator[StreamDelta], release: Any) -> None:
        self._deltas = deltas
        self._release = release
        self._done = False

    def __aiter__(self) -> RemoteStream:
        return self

    async def __anext__(self) -> StreamDelta:
        if self._done:
            raise StopAsyncIteration
        try:
            return await self._deltas.__anext__()
        except BaseException:
            self._finish()
            raise

    def cancel(self) -> None:
        if not self._done:
            self._finish()
            # Close the response: the upstream sees the disconnect and stops generating.
            task = asyncio.ensure_future(_close(self._deltas))
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._release()


async def _close(deltas: AsyncIterator[StreamDelta]) -> None:
    aclose = getattr(deltas, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(RuntimeError):  # still running in its consumer's task: that task's cancel closes it
            await aclose()


class RemoteEngine:
    """Generation on an OpenAI-compatible server; rendering, tokenizing and limits stay local."""

    name = "remote"
    supports_logprobs = False
    """The upstream's logprobs are not relayed yet: a request for them is refused by name, not ignored."""
    supports_grammars = False
    """Constrained decoding (tools, ``response_format``) is not forwarded upstream yet: refused by name (400)."""

    def check_grammar(self, grammar: str) -> None:
        raise InvalidGrammar("the remote engine does not apply grammars")

    def __init__(
        self,
        tokenizer: Any,
        *,
        url: str,
        upstream_model: str,
        model_id: str,
        is_dev: bool,
        context_length: int,
        settings: EngineSettings,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._tokenizer = tokenizer
        self.url = url.rstrip("/")
        self.upstream_model = upstream_model
        self.model_id = model_id
        self.revision: str | None = None
        self.is_dev = is_dev
        self.context_length = context_length
        self.has_chat_template = bool(tokenizer.chat_template)
        self._supports_system = supports_system_role(tokenizer)
        self._settings = settings
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self.breaker = CircuitBreaker(settings.remote.breaker_threshold, settings.remote.breaker_cooldown_s)
        self._running = 0
        self._max_running = settings.max_batch_size
        self._max_waiting = settings.max_queue
        self._slots = asyncio.Semaphore(settings.max_batch_size)
        self.description = (
            f"{model_id} ({'dev model, ' if is_dev else ''}remote OpenAI-compatible engine at "
            f"{_origin(self.url)}, model {upstream_model!r}; {settings.max_batch_size} concurrent, "
            f"queue {settings.max_queue})"
        )

    @classmethod
    def load(cls, ref: str, settings: EngineSettings, *, is_dev: bool, model_id: str | None = None) -> RemoteEngine:
        """Load ``ref``'s tokenizer and config (the model the upstream serves) or raise :class:`EngineUnavailable`."""
        from transformers import AutoConfig, AutoTokenizer

        if not settings.remote.url:
            raise EngineUnavailable("GUARD_ENGINE=remote needs GUARD_ENGINE_URL (e.g. http://vllm:8000).")
        if urlsplit(settings.remote.url).scheme not in ("http", "https"):
            raise EngineUnavailable(
                f"GUARD_ENGINE_URL must be an http(s) URL, got scheme {urlsplit(settings.remote.url).scheme!r}."
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(ref)
            config = AutoConfig.from_pretrained(ref)
        except OSError as exc:
            raise EngineUnavailable(
                f"the remote engine's tokenizer {ref!r} is not available locally: {str(exc).splitlines()[0]} "
                "Set GUARD_MODEL to the model the upstream serves (a local directory or a cached hub id)."
            ) from None
        upstream = settings.remote.model or ref
        return cls(
            tokenizer,
            url=settings.remote.url,
            upstream_model=upstream,
            model_id=model_id or upstream,
            is_dev=is_dev,
            context_length=int(getattr(config, "max_position_embeddings", 8192)),
            settings=settings,
        )

    def render_chat(self, messages: list[ChatMessage], tools: Sequence[FunctionSpec] = ()) -> str:
        """The prompt for a conversation in the served model's template (neutralising control tokens)."""
        return render_chat(self._tokenizer, messages, system_role=self._supports_system, tools=tools)

    def tokenize(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        ids = self._tokenizer(text, add_special_tokens=add_special_tokens, split_special_tokens=add_special_tokens)
        return list(ids.input_ids)

    def count_tokens(self, prompt: str) -> int:
        return len(self.tokenize(prompt))

    def token_bytes(self, token_id: int) -> bytes:
        return str(self._tokenizer.decode([token_id])).encode()

    def stream(self, prompt: Prompt, params: SamplingParams) -> RemoteStream:
        """Admit the request now (:class:`EngineBusy`, :class:`PromptTooLong`, or :class:`EngineError` while the
        breaker is open); the upstream is called when the deltas are iterated."""
        if isinstance(prompt, str):
            text, tokens_in = prompt, self.count_tokens(prompt)
        else:  # token ids (raw completions, the readiness probe): the upstream gets their exact text back
            text, tokens_in = str(self._tokenizer.decode(list(prompt), skip_special_tokens=False)), len(prompt)
        if tokens_in + params.max_tokens > self.context_length:
            raise PromptTooLong(tokens_in, params.max_tokens, self.context_length)
        if params.grammar is not None:
            raise EngineError("the remote engine does not apply grammars")
        if self._running >= self._max_running + self._max_waiting:
            raise EngineBusy("the remote engine queue is full")
        if not self.breaker.admit():
            raise EngineError("the remote engine is unavailable (circuit breaker open)")
        self._running += 1
        return RemoteStream(self._deltas(text, tokens_in, params), self._release)

    async def generate(self, prompt: Prompt, params: SamplingParams) -> Generation:
        return await collect(self.stream(prompt, params))

    def stats(self) -> EngineStats:
        waiting = max(0, self._running - self._max_running)
        return EngineStats(
            running=self._running - waiting,
            waiting=waiting,
            max_running=self._max_running,
            max_waiting=self._max_waiting,
            healthy=self._client is not None and not self.breaker.open,
            last_error=self.breaker.last_error,
        )

    async def start(self) -> None:
        timeout = httpx.Timeout(self._settings.remote.timeout_s)
        limits = httpx.Limits(max_connections=self._max_running, max_keepalive_connections=self._max_running)
        self._client = httpx.AsyncClient(timeout=timeout, limits=limits, transport=self._transport)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _release(self) -> None:
        self._running -= 1

    def _body(self, text: str, params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.upstream_model,
            "prompt": text,
            "max_tokens": params.max_tokens,
            "temperature": max(params.temperature, 0.0),
            "top_p": params.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.top_k:
            body["top_k"] = params.top_k  # vLLM/TGI extension; OpenAI itself ignores unknown fields
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.ignore_eos:
            body["ignore_eos"] = True  # vLLM extension (benchmarks only)
        return body

    async def _deltas(self, text: str, tokens_in: int, params: SamplingParams) -> AsyncIterator[StreamDelta]:
        """Always streams from the upstream: unstreamed requests collect it (one code path, and the read timeout
        then bounds the gap between tokens rather than the whole generation)."""
        async with self._slots:
            response = await self._connect(self._body(text, params))
            self.breaker.succeeded()  # the upstream accepted the request: it is reachable
            try:
                async for delta in self._read(response, tokens_in, params.stop):
                    yield delta
            except httpx.HTTPError as exc:
                self.breaker.failed(type(exc).__name__, connection=False)
                raise EngineError(f"the remote engine failed mid-response ({type(exc).__name__})") from None
            finally:
                await response.aclose()

    async def _connect(self, body: dict[str, Any]) -> httpx.Response:
        """Send the request, retrying only while no connection could be made; return the open 200 response."""
        if self._client is None:
            raise EngineError("the remote engine client is not started")
        request = self._client.build_request("POST", f"{self.url}/v1/completions", json=body)
        attempts = max(0, self._settings.remote.retries) + 1
        for attempt in range(attempts):
            try:
                response = await self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached the upstream: safe to retry
                if attempt + 1 < attempts:
                    await asyncio.sleep(BACKOFF_BASE_S * 2**attempt)
                    continue
                self.breaker.failed(f"connection failed ({type(exc).__name__})", connection=True)
                raise EngineError(f"the remote engine is unreachable ({type(exc).__name__})") from None
            except httpx.HTTPError as exc:  # accepted, then failed (e.g. a read timeout): not retried
                self.breaker.failed(type(exc).__name__, connection=False)
                raise EngineError(f"the remote engine failed ({type(exc).__name__})") from None
            if response.status_code != 200:
                await response.aclose()
                self.breaker.failed(f"HTTP {response.status_code}", connection=response.status_code in (502, 503))
                raise EngineError(f"the remote engine answered HTTP {response.status_code}")
            return response
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _read(
        self, response: httpx.Response, tokens_in: int, stop: tuple[str, ...]
    ) -> AsyncIterator[StreamDelta]:
        """Parse the SSE ``data:`` lines of a streamed completion into deltas (the last has ``finish_reason``).

        Stop strings are sent upstream and enforced here too (not every server honours them): the text is cut
        before a stop string, and a possible start of one is held back until it is known not to be one."""
        sent: list[str] = []
        stops = StopStrings(stop)
        finish: FinishReason | None = None
        usage_out: int | None = None
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            payload = line.removeprefix("data:").strip()
            if payload == "[DONE]":
                break
            try:
                chunk = json.loads(payload)
            except json.JSONDecodeError:
                raise EngineError("the remote engine sent an unparseable stream chunk") from None
            if isinstance(chunk.get("usage"), dict):
                usage_out = chunk["usage"].get("completion_tokens", usage_out)
            for choice in chunk.get("choices") or []:
                piece = choice.get("text") or ""
                reason = choice.get("finish_reason")
                if reason is not None:
                    finish = "length" if reason == "length" else "stop"
                if piece:
                    sent.append(piece)
                    released = stops.feed(piece)
                    if stops.hit:
                        finish = "stop"
                        break
                    yield StreamDelta(released, (), tokens_in, len(sent))  # ~a token per chunk; exact count at end
            if stops.hit:
                break
        tail = stops.released_tail()
        tokens_out = usage_out if usage_out is not None and not stops.hit else self.count_tokens("".join(sent))
        yield StreamDelta(tail, (), tokens_in, tokens_out, finish_reason=finish or "stop")


class StopStrings:
    """Cuts generated text before the first stop string, holding back what could still become one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._held = ""
        self.hit = False

    def feed(self, piece: str) -> str:
        """The text that can be released now (empty when a stop string was hit: see :meth:`released_tail`)."""
        text = self._held + piece
        cut = min((i for i in (text.find(stop) for stop in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.hit, self._held = True, text[:cut]
            return ""
        keep = max((n for stop in self._stops for n in range(1, len(stop)) if text.endswith(stop[:n])), default=0)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def released_tail(self) -> str:
        """What is left to release when generation ends (before the stop string, if one was hit)."""
        tail, self._held = self._held, ""
        return tail


def _origin(url: str) -> str:
    """Scheme, host and port only: a URL's credentials or query never reach logs or /readyz."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
