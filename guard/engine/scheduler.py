"""Continuous batching: sequences join the running batch at step boundaries and leave as soon as they finish.

One worker thread owns the model. Each step it (1) drops cancelled sequences, (2) admits waiting sequences into
free slots while the step's prefill budget lasts and prefills each one unpadded (chunked, into its own cache row;
only the last position goes through the vocabulary projection), then (3) runs one decode forward for every
running sequence at its own position. Finished rows are compacted so running rows stay ``0..n-1``.

Why our own scheduler over the model's forward rather than transformers' ContinuousBatchingManager: that manager's
CPU path (``paged|eager``) drops Gemma-2's attention softcap and stops only at EOS/max tokens, and in our
measurements it was slower than one padded ``generate()``. Here the model's own attention layers run (softcap,
sliding window and final-logit softcap included) on a slot cache (:mod:`guard.engine.kvcache`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from guard import metrics
from guard.engine.base import (
    EngineBusy,
    EngineError,
    EngineStats,
    FinishReason,
    PromptTooLong,
    SamplingParams,
    StreamDelta,
    TokenLogprob,
)
from guard.engine.compiled_step import CompiledStep
from guard.engine.detokenize import Decode, Detokenizer
from guard.engine.grammar import GrammarCompiler
from guard.engine.head import VocabularyHead
from guard.engine.kvcache import SlotKVCache, attention_masks
from guard.engine.lean_forward import lean_forward_for
from guard.engine.prefill import prefill_groups
from guard.engine.sampling import Sampler

__all__ = ["ContinuousBatcher", "SequenceStream"]

logger = logging.getLogger(__name__)

_END = object()
"""Put on a sequence's queue after its final delta."""


@dataclass(eq=False)
class _Sequence:
    prompt: list[int]
    params: SamplingParams
    sampler: Sampler
    detokenizer: Detokenizer
    emit: Callable[[object], object]
    generated: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    cancelled: bool = False
    sent_tokens: int = 0
    matcher: Any = None
    """The llguidance matcher of a constrained sequence (``None``: unconstrained)."""

    @property
    def length(self) -> int:
        """Tokens in this sequence's cache row."""
        return len(self.prompt) + len(self.generated)


class SequenceStream:
    """The deltas of one submitted sequence (an async iterator); cancelling its consumer cancels the sequence."""

    def __init__(self, sequence: _Sequence, queue: asyncio.Queue[object]) -> None:
        self._sequence = sequence
        self._queue = queue
        self._done = False

    def __aiter__(self) -> SequenceStream:
        return self

    async def __anext__(self) -> StreamDelta:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._queue.get()
        except BaseException:  # the consumer was cancelled (e.g. its client disconnected)
            self.cancel()
            raise
        if item is _END:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        assert isinstance(item, StreamDelta)
        return item

    def cancel(self) -> None:
        """Drop the sequence at the next step boundary (a no-op once it has finished)."""
        self._sequence.cancelled = True


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (0: unchanged), then restore the calling thread's count."""
    if not threads:  # the default: nothing to ask torch on the per-step path
        yield
        return
    before = torch.get_num_threads()
    if threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ContinuousBatcher:
    def __init__(
        self,
        model: Any,
        *,
        decode: Decode,
        stop_token_ids: Sequence[int],
        servable_vocab: int,
        context_length: int,
        max_running: int,
        max_waiting: int,
        prefill_chunk: int,
        grammars: GrammarCompiler | None = None,
        decode_threads: int = 0,
        compile_backend: str | None = None,
    ) -> None:
        self._model = model
        self._decode_threads = decode_threads
        self._grammars = grammars
        self._config = model.config
        self._decode = decode
        self._stop_ids = frozenset(stop_token_ids)
        self.context_length = context_length
        self.max_running = max_running
        self.max_waiting = max_waiting
        self._prefill_chunk = max(1, prefill_chunk)
        self._device = model.device
        self._decoder = model.get_decoder()
        self._lean = lean_forward_for(model)
        self._head = VocabularyHead(model.config, servable_vocab=servable_vocab, grammars=grammars)
        self._cache = SlotKVCache(model.config, slots=max_running, dtype=model.dtype, device=model.device)
        self._compiled: CompiledStep | None = None
        self._project: Callable[[torch.Tensor], torch.Tensor] = model.lm_head  # all 256k vocabulary rows, every row
        if compile_backend is not None and self._lean is not None:
            self._compiled = CompiledStep(self._lean, model, self._cache, backend=compile_backend)
            self._project = self._compiled.project
        self._waiting: deque[_Sequence] = deque()
        self._running: list[_Sequence] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.steps = 0
        self._last_error: str | None = None

    # -- lifecycle (event loop side) ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="guard-engine", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def stats(self) -> EngineStats:
        healthy = self._thread is not None and self._thread.is_alive()
        return EngineStats(
            running=len(self._running),
            waiting=len(self._waiting),
            max_running=self.max_running,
            max_waiting=self.max_waiting,
            healthy=healthy,
            last_error=self._last_error,
        )

    def submit(self, prompt: list[int], params: SamplingParams) -> SequenceStream:
        """Queue one sequence (raising :class:`PromptTooLong` or :class:`EngineBusy` now); iterate for deltas."""
        if not prompt:
            raise EngineError("the prompt is empty")  # callers always send a template or <bos>
        if len(prompt) + params.max_tokens > self.context_length:
            raise PromptTooLong(len(prompt), params.max_tokens, self.context_length)
        matcher = None
        if params.grammar is not None:
            if self._grammars is None:
                raise EngineError("this engine has no constrained decoding")
            matcher = self._grammars.matcher(params.grammar)  # InvalidGrammar: the caller's 400
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        sequence = _Sequence(
            matcher=matcher,
            prompt=prompt,
            params=params,
            sampler=Sampler(params, self._device),
            detokenizer=Detokenizer(self._decode, params.stop),
            emit=lambda item: loop.call_soon_threadsafe(queue.put_nowait, item),
        )
        with self._wake:
            if self._thread is None or not self._thread.is_alive():
                raise EngineError("the engine worker is not running")
            if len(self._waiting) >= self.max_waiting:
                raise EngineBusy(f"{len(self._waiting)} requests are already waiting for the engine")
            self._waiting.append(sequence)
            self._wake.notify()
        return SequenceStream(sequence, queue)

    @property
    def warm_up_sizes(self) -> list[int]:
        """Every bucket of a compiled step (static shapes), else a few (the compiled decoder's are dynamic)."""
        return self._compiled.buckets if self._compiled is not None else sorted({1, 2, self.max_running})

    def warm_up(self, rows: int) -> None:
        """Run one prefill and one decode step with ``rows`` rows (compiles them); call before :meth:`start`."""
        prompt = [0] * 8
        with torch.inference_mode():
            self._cache.reserve(len(prompt) + 1)
            if self._compiled is not None:  # its graphs (prefill stays eager), decode on the threads it will run on
                self._compiled.warm_up(rows, decode_threads=_torch_threads(self._decode_threads))
                self._cache.release()
                return
            states = self._prefill([prompt] * rows, 0)
            positions = torch.full((rows, 1), len(prompt), device=self._device)
            self._cache.bind_decode(positions[:, 0], len(prompt) + 1)
            tokens = torch.zeros((rows, 1), dtype=torch.long, device=self._device)
            decoded = self._hidden(tokens, positions, len(prompt) + 1)[:, -1]
            self._model.lm_head(torch.cat([decoded, torch.stack(states)]))
            self._cache.release()

    # -- worker thread --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self._wake:
                    while not self._stopping and not self._waiting and not self._running:
                        self._wake.wait()
                    if self._stopping:
                        break
                try:
                    self._step()
                    self._last_error = None
                except Exception as exc:  # fail the batch, keep serving: the next request starts clean
                    # torch.OutOfMemoryError lands here too: its sequences get a 503, their memory is released.
                    logger.exception("engine step failed; failing %d running sequences", len(self._running))
                    self._last_error = type(exc).__name__
                    self._fail_all(EngineError(f"generation failed: {type(exc).__name__}"))
                    if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
                        torch.cuda.empty_cache()
        self._fail_all(EngineError("the engine stopped"), waiting=True)

    def _fail_all(self, error: EngineError, *, waiting: bool = False) -> None:
        failed = list(self._running)
        if waiting:
            with self._wake:
                failed += list(self._waiting)
                self._waiting.clear()
        for sequence in failed:
            sequence.emit(error)
        self._running.clear()
        self._cache.release()

    def _step(self) -> None:
        """Prefill admitted prompts and decode every running sequence, then one vocabulary projection for all.

        The projection onto Gemma's 256k-token vocabulary reads the largest matrix of the model: doing it once per
        step for every row (decoding rows and the last position of each new prompt) instead of once per forward
        is what makes admitting many prompts at once cheap."""
        self.steps += 1
        self._drop_cancelled()
        decoding = list(self._running)
        with _torch_threads(self._decode_threads):
            hidden = [self._decode_hidden(decoding)] if decoding else []
        admitted = self._admit()
        hidden += [torch.stack([state for _, state in admitted])] if admitted else []
        sequences = decoding + [sequence for sequence, _ in admitted]
        if sequences:
            metrics.ENGINE_BATCH_SIZE.observe(len(sequences))
            tokens, logprobs = self._head.choose(sequences, self._project(torch.cat(hidden)))
            for sequence, token, logprob in zip(sequences, tokens, logprobs, strict=True):
                self._accept(sequence, token, logprob)
        if not self._running:
            self._cache.release()

    def _drop_cancelled(self) -> None:
        with self._wake:
            if any(s.cancelled for s in self._waiting):
                self._waiting = deque(s for s in self._waiting if not s.cancelled)
        for sequence in [s for s in self._running if s.cancelled]:
            self._remove(sequence)

    def _admit(self) -> list[tuple[_Sequence, torch.Tensor]]:
        """Prefill waiting sequences into free slots; returns each one's last hidden state ``[hidden]``.

        While sequences are decoding, admission stops once a chunk's worth of prompt tokens has been prefilled
        this step (a burst of long prompts delays running streams by about one chunk per step); with nothing
        decoding there is nothing to delay and every free slot is filled at once. Admitted prompts are prefilled
        together, longest first (:mod:`guard.engine.prefill`)."""
        admitted: list[_Sequence] = []
        budget = self._prefill_chunk if self._running else sys.maxsize
        while len(self._running) + len(admitted) < self.max_running and budget > 0:
            with self._wake:
                if not self._waiting:
                    break
                sequence = self._waiting.popleft()
            budget -= len(sequence.prompt)
            admitted.append(sequence)
        if not admitted:
            return []
        admitted.sort(key=lambda s: len(s.prompt), reverse=True)  # a group's rows that finish early are its tail
        self._cache.reserve(max(len(s.prompt) + s.params.max_tokens for s in admitted))
        first = len(self._running)
        self._running.extend(admitted)
        states: list[torch.Tensor] = []
        for group in prefill_groups([len(s.prompt) for s in admitted], self._prefill_chunk):
            states += self._prefill([admitted[index].prompt for index in group], first + group.start)
        return list(zip(admitted, states, strict=True))

    def _prefill(self, prompts: list[list[int]], slot: int) -> list[torch.Tensor]:
        """Run prompts (longest first) through the decoder together, in chunks and right-padded, into cache rows
        ``slot..``; each prompt's last hidden state."""
        states: list[torch.Tensor] = [torch.empty(0)] * len(prompts)
        for start in range(0, len(prompts[0]), self._prefill_chunk):
            rows = sum(len(p) > start for p in prompts)  # longest first: the rows still prefilling are a prefix
            width = min(self._prefill_chunk, len(prompts[0]) - start)
            chunk = [p[start : start + width] + [0] * (width - len(p[start : start + width])) for p in prompts[:rows]]
            positions = torch.arange(start, start + width, device=self._device)[None, :].repeat(rows, 1)
            self._cache.bind_prefill(slot, start, width, rows)
            hidden = self._hidden(torch.tensor(chunk, device=self._device), positions, start + width)
            for row, prompt in enumerate(prompts[:rows]):
                if len(prompt) <= start + width:
                    states[row] = hidden[row, len(prompt) - 1 - start]
        return states

    def _decode_hidden(self, sequences: list[_Sequence]) -> torch.Tensor:
        """One decoder forward for rows ``0..n-1``, each at its own position; ``[n, hidden]``."""
        width = max(s.length for s in sequences)
        tokens = torch.tensor([s.generated[-1] for s in sequences], device=self._device)
        positions = torch.tensor([s.length - 1 for s in sequences], device=self._device)
        if self._compiled is not None:
            return self._compiled.decode(tokens, positions, width)
        self._cache.bind_decode(positions, width)
        return self._hidden(tokens[:, None], positions[:, None], width)[:, -1]

    def _hidden(self, input_ids: torch.Tensor, positions: torch.Tensor, width: int) -> torch.Tensor:
        """The decoder (the model without its vocabulary head) on our cache: ``[rows, positions, hidden]`` — the
        lean Gemma-2 forward where it applies (:mod:`guard.engine.lean_forward`), else transformers'."""
        masks = attention_masks(self._config, positions, width, self._model.dtype)
        if self._lean is not None:
            return self._lean(input_ids, positions, masks, self._cache)
        output = self._decoder(
            input_ids=input_ids,
            position_ids=positions,
            attention_mask=masks,
            past_key_values=self._cache,
            use_cache=True,
        )
        return output.last_hidden_state

    def _accept(self, sequence: _Sequence, token: int, logprob: TokenLogprob | None = None) -> None:
        """Record one new token; emit what can be released; remove the sequence when it is done."""
        params = sequence.params
        finish: FinishReason | None = None
        if sequence.matcher is not None and not sequence.matcher.consume_token(token):
            logger.error("a grammar matcher refused a token its own mask allowed")
            sequence.emit(EngineError("constrained decoding failed"))
            self._remove(sequence)
            return
        if token in self._stop_ids and not params.ignore_eos:
            finish = "stop"
        else:
            sequence.generated.append(token)
            if logprob is not None:
                sequence.logprobs.append(logprob)
            sequence.detokenizer.add(token)
            if sequence.detokenizer.stopped or (sequence.matcher is not None and sequence.matcher.is_stopped()):
                finish = "stop"  # a stop string, or a grammar that nothing more can extend (a closed JSON value)
            elif len(sequence.generated) >= params.max_tokens:
                finish = "length"
        text = sequence.detokenizer.release(final=finish is not None)
        new = tuple(sequence.generated[sequence.sent_tokens :])
        if text or finish is not None or new:
            sequence.sent_tokens = len(sequence.generated)
            sequence.emit(
                StreamDelta(
                    text=text,
                    token_ids=new,
                    tokens_in=len(sequence.prompt),
                    tokens_out=len(sequence.generated),
                    finish_reason=finish,
                    logprobs=tuple(sequence.logprobs[sequence.sent_tokens - len(new) :]) if sequence.logprobs else (),
                )
            )
        if finish is not None:
            sequence.emit(_END)
            self._remove(sequence)

    def _remove(self, sequence: _Sequence) -> None:
        """Free the sequence's slot; the last running row moves into it so rows stay contiguous."""
        slot = self._running.index(sequence)
        last = len(self._running) - 1
        if slot != last:
            moved = self._running[last]
            self._cache.move(last, slot, moved.length)
            self._running[slot] = moved
        self._running.pop()
