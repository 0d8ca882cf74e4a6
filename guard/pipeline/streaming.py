"""A streamed answer as one async iterator of typed events: segment release, close and abandon.

The events, in order (the audit contract of ARCHITECTURE.md)::

    Opened(decision_id)    the input stage passed and the opening record is committed: the response may start
    Text(text)...          each segment of the answer, released only after it passed the output checks
    Finished(outcome)      the answer is complete (the finish and usage chunks); not yet committed
    Closed()               the closing record is committed: ``data: [DONE]``
    Failed(message)        instead of what is left: a check, the engine or the closing commit failed (already
                           audited); the stream ends with an error event

A violation stops the generation: nothing of the violating segment is released and the outcome's finish reason is
``content_filter`` (when nothing was released yet, the refusal is the whole answer, as unstreamed). An iterator
closed before ``Closed`` or ``Failed`` (the client went away, the server is stopping) cancels the generation (its
engine slot is freed at the next step) and records a 499 close, best effort; its outcome is ``client_stalled``
when the server cut a client that had stopped reading (told through ``Opened.client``), else ``error``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import anyio
import msgspec

from guard.checks.segmenter import OutputSegmenter
from guard.engine import EngineError, TokenLogprob
from guard.pipeline.errors import ServiceUnavailable
from guard.pipeline.logprobs import LogprobRelease
from guard.pipeline.records import NOT_STORED, AuditLog, abandoned_record, closing_record
from guard.pipeline.stage import CheckStage
from guard.pipeline.turn import ChatOutcome, Turn, elapsed_ms
from guard.policy import strongest

__all__ = ["ClientState", "Closed", "Failed", "Finished", "Opened", "StreamEvent", "Streams", "Text"]

_CONTEXT_CHARS = 240
"""How much of a stream's released text the judging checks see before the next segment."""


@dataclass(slots=True)
class ClientState:
    """What the server layer tells a stream about its client."""

    stalled: bool = False
    """The client stopped reading and the server cut it (send timeout)."""

    def mark_stalled(self) -> None:
        self.stalled = True


@dataclass(frozen=True, slots=True)
class Opened:
    """The opening record (id ``decision_id``) is committed: the response may start."""

    decision_id: str
    client: ClientState = field(default_factory=ClientState)
    """Read when the stream is abandoned, to record why."""


@dataclass(frozen=True, slots=True)
class Text:
    """A released segment of the answer (checked, with the caller's placeholders restored where the policy says)
    and, when asked for, the log-probabilities of the tokens it covers (see :mod:`guard.pipeline.logprobs`)."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class Finished:
    """The answer is complete; the closing record is committed next."""

    outcome: ChatOutcome


@dataclass(frozen=True, slots=True)
class Closed:
    """The closing record is committed: the stream is answered."""


@dataclass(frozen=True, slots=True)
class Failed:
    """The stream cannot go on (already audited as a failed close); ``message`` is safe to send."""

    message: str


StreamEvent = Opened | Text | Finished | Closed | Failed


@dataclass(slots=True)
class _Released:
    """What a checked stream has released so far."""

    sent: list[str] = field(default_factory=list)
    """Segments as the caller got them."""
    stored: list[str] = field(default_factory=list)
    """The same segments in their stored (redacted) form."""
    context: str = ""
    """The tail of the last released segment, judged with the next one."""
    check_ms: float = 0.0


class Streams:
    """Drives opened turns as event streams."""

    def __init__(self, stage: CheckStage, audit: AuditLog, token_bytes: Callable[[int], bytes]) -> None:
        self._stage = stage
        self._audit = audit
        self._token_bytes = token_bytes

    async def events(self, turn: Turn) -> AsyncGenerator[StreamEvent, None]:
        """The events of ``turn``, whose opening record is committed (see the module docstring)."""
        closed, opened = False, Opened(turn.decision_id)
        try:
            yield opened
            outcome: ChatOutcome | None = None
            try:
                async with contextlib.aclosing(self._released(turn)) as released:
                    async for event in released:
                        if isinstance(event, Finished):
                            outcome = event.outcome
                        yield event
            except ServiceUnavailable as exc:  # already audited as a failed close
                closed = True
                yield Failed(str(exc))
                return
            assert outcome is not None  # the release ends with the outcome
            try:
                await self._audit.commit(closing_record(turn, outcome))
            except ServiceUnavailable as exc:
                closed = True
                yield Failed(str(exc))
                return
            closed = True
            yield Closed()
        finally:
            if not closed:  # the client went away (or the server is stopping): free the slot, record a 499
                with anyio.CancelScope(shield=True):
                    await self.abandon(turn, stalled=opened.client.stalled)

    async def abandon(self, turn: Turn, *, stalled: bool = False) -> None:
        """The client went away mid-stream (or was cut for not reading, ``stalled``): free the engine slot and
        record a 499 close (best effort)."""
        if turn.deltas is not None:
            turn.deltas.cancel()
        await self._audit.write_best_effort(abandoned_record(turn, stalled=stalled))

    async def _released(self, turn: Turn) -> AsyncGenerator[Text | Finished, None]:
        """The generation, segment by segment (sentences, see :mod:`guard.checks.segmenter`), each one through the
        output checks before it is released, then the outcome of what was sent; raises :class:`ServiceUnavailable`
        (audited) if the engine or a check fails."""
        policy = turn.policy.policy
        if turn.deltas is None:  # blocked on input: the refusal is the whole answer
            outcome = turn.answer(policy.refusal_message, "content_filter", turn.tokens_in, 0, None)
            yield Text(policy.refusal_message)
            yield Finished(outcome)
            return
        segmenter, released = OutputSegmenter(), _Released()
        finish, tokens_out, blocked = "length", 0, False
        logprobs = LogprobRelease(self._token_bytes) if turn.params.logprobs is not None else None
        generation_started = time.perf_counter()
        try:
            async for delta in turn.deltas:
                new_tokens = delta.tokens_out - tokens_out
                tokens_out, finish = delta.tokens_out, delta.finish_reason or finish
                if logprobs is not None:
                    logprobs.add(delta.logprobs)
                for segment in segmenter.feed(delta.text, new_tokens):
                    text = await self._release(turn, released, segment)
                    if text is None:
                        blocked = True
                        break
                    yield Text(text, logprobs.release(segment, text) if logprobs is not None else ())
                    released.sent.append(text)
                if blocked:
                    turn.deltas.cancel()  # stop generating: the slot is freed at the next engine step
                    break
            if not blocked and (rest := segmenter.flush()):
                text = await self._release(turn, released, rest)
                blocked = text is None
                if text is not None:
                    yield Text(text, logprobs.release(rest, text) if logprobs is not None else ())
                    released.sent.append(text)
        except EngineError as exc:
            await self._audit.failed(turn)
            raise ServiceUnavailable(str(exc)) from None
        except ServiceUnavailable:
            turn.deltas.cancel()
            await self._audit.failed(turn)
            raise
        turn.sent_chars = sum(len(text) for text in released.sent)  # model output only, the refusal is ours
        if blocked and not released.sent:  # cut before anything was sent: answer with the refusal, as unstreamed
            yield Text(policy.refusal_message)
            released.sent.append(policy.refusal_message)
            released.stored.append(policy.refusal_message)
        turn.latency["generation"] = elapsed_ms(generation_started)
        turn.latency["output_checks"] = round(released.check_ms, 2)
        turn.decision = strongest([f.action for f in turn.findings])
        redacting = policy.output.pii is not None or policy.output.secrets is not None
        audit_text = "".join(released.stored) if redacting else NOT_STORED
        finish_reason = "content_filter" if blocked else finish
        yield Finished(turn.answer("".join(released.sent), finish_reason, turn.tokens_in, tokens_out, audit_text))

    async def _release(self, turn: Turn, released: _Released, segment: str) -> str | None:
        """The checked form of a stream's next ``segment`` as the caller gets it, or ``None`` if it violates."""
        started = time.perf_counter()
        out = await self._stage.run(
            turn.policy,
            "output",
            [segment],
            turn.scope,
            shadow=turn.shadow,
            context=released.context,
            prompt=turn.prompt,
        )
        released.check_ms += (time.perf_counter() - started) * 1000
        offset = sum(len(text) for text in released.stored)  # findings index the stored output as a whole
        turn.findings += [msgspec.structs.replace(f, start=f.start + offset, end=f.end + offset) for f in out.findings]
        turn.subjects |= out.subjects
        turn.scores += out.scores
        if any(f.action == "block" for f in out.findings):
            return None
        released.stored.append(out.audit_texts[0] if out.audit_texts[0] is not None else out.texts[0])
        released.context = segment[-_CONTEXT_CHARS:]
        text = turn.for_caller(out.texts[0])
        turn.checked_chars += len(text)
        return text
