"""The four systems under test behind one async interface: ``serve`` one request, return when and how it streamed.

Timestamps are taken on the event loop (where a client would see a token), never inside model code.
Every system gets the same prompt token ids, greedy decoding and exact new-token counts (EOS ignored).
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

MAX_BATCH = 32


@dataclass(frozen=True, slots=True)
class Request:
    prompt: tuple[int, ...]
    """Token ids, ``<bos>`` first."""
    text: str
    """The same prompt as text without ``<bos>`` (the pipeline takes text and adds ``<bos>`` itself)."""
    max_new_tokens: int


@dataclass(slots=True)
class Timing:
    submitted: float = field(default_factory=perf_counter)
    first_token: float = math.nan
    finished: float = math.nan
    tokens: int = 0

    def mark_first(self) -> None:
        if math.isnan(self.first_token):
            self.first_token = perf_counter()


class System:
    """The benchmarked interface; subclasses override ``serve`` and, when they run workers, ``start``/``stop``."""

    key: str
    label: str
    notes: tuple[str, ...] = ()

    async def start(self) -> None:
        """Start background workers (after loading, before warm-up)."""

    async def stop(self) -> None:
        """Stop background workers."""

    async def serve(self, request: Request) -> Timing:
        raise NotImplementedError


def load_model(model_dir: Path) -> Any:
    """bf16 with eager attention: the implementation that applies Gemma-2's softcaps on CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation="eager").eval()


def vocab_mask(size: int) -> Any:
    """A LogitsProcessorList that never lets ids the tokenizer lacks be chosen (the model's vocabulary is larger)."""
    from transformers import LogitsProcessor, LogitsProcessorList

    class VocabMask(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            scores[:, size:] = -math.inf
            return scores

    return LogitsProcessorList([VocabMask()])


class StepStreamer:
    """A transformers streamer: ``put`` is called with the prompt, then once per decoding step for the whole batch."""

    def __init__(self, on_first_token: Callable[[], None]) -> None:
        self.calls = 0
        self._on_first_token = on_first_token

    @property
    def steps(self) -> int:
        return max(self.calls - 1, 0)

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls == 2:
            self._on_first_token()

    def end(self) -> None:
        """Nothing to flush."""


def _on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` on the event loop from the generation thread: the client-side timestamp."""

    def schedule() -> None:
        loop.call_soon_threadsafe(callback)

    return schedule


class PipelineSystem(System):
    """(a) The model card's usage: ``pipeline("text-generation")``, one request at a time."""

    key = "a"
    label = "(a) pipeline, 1 at a time"

    def __init__(self, model_dir: Path, vocab: int) -> None:
        import torch
        from transformers import pipeline

        self._pipe = pipeline(
            "text-generation",
            model=str(model_dir),
            dtype=torch.bfloat16,
            device="cpu",
            model_kwargs={"attn_implementation": "eager"},
        )
        self._mask = vocab_mask(vocab)
        self._lock = asyncio.Lock()

    async def serve(self, request: Request) -> Timing:
        timing = Timing()
        streamer = StepStreamer(_on_loop(asyncio.get_running_loop(), timing.mark_first))
        async with self._lock:
            await asyncio.to_thread(self._generate, request, streamer)
        timing.finished, timing.tokens = perf_counter(), streamer.steps
        return timing

    def _generate(self, request: Request, streamer: StepStreamer) -> None:
        n = request.max_new_tokens
        self._pipe(
            request.text,
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            return_full_text=False,
            logits_processor=self._mask,
            streamer=streamer,
        )


@dataclass(slots=True)
class _Pending:
    request: Request
    timing: Timing
    done: asyncio.Future[None]


class StaticBatchSystem(System):
    """(b) Padded static batching: whenever idle, everything waiting (up to 32) goes into one left-padded
    ``generate``. A request's tokens count up to its own length, but it finishes when its batch does."""

    key = "b"
    label = "(b) padded static batches"

    def __init__(self, model: Any, vocab: int, pad_id: int) -> None:
        self._model = model
        self._mask = vocab_mask(vocab)
        self._pad_id = pad_id
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._schedule())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def serve(self, request: Request) -> Timing:
        pending = _Pending(request, Timing(), asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        await pending.done
        return pending.timing

    async def _schedule(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._run(batch)

    async def _run(self, batch: list[_Pending]) -> None:
        def first_token() -> None:
            for pending in batch:
                pending.timing.mark_first()

        streamer = StepStreamer(_on_loop(asyncio.get_running_loop(), first_token))
        try:
            await asyncio.to_thread(self._generate, [p.request for p in batch], streamer)
        except Exception as exc:
            for pending in batch:
                pending.done.set_exception(exc)
            return
        now = perf_counter()
        for pending in batch:
            pending.timing.finished = now
            pending.timing.tokens = min(pending.request.max_new_tokens, streamer.steps)
            pending.done.set_result(None)

    def _generate(self, requests: list[Request], streamer: StepStreamer) -> None:
        import torch

        width = max(len(r.prompt) for r in requests)
        input_ids = torch.full((len(requests), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, request in enumerate(requests):
            input_ids[row, width - len(request.prompt) :] = torch.tensor(request.prompt)
            attention_mask[row, width - len(request.prompt) :] = 1
        n = max(r.max_new_tokens for r in requests)
        with torch.inference_mode():
            self._model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=self._pad_id,
                logits_processor=self._mask,
                streamer=streamer,
            )


@dataclass(frozen=True, slots=True)
class CacheSizing:
    """Explicit paged-cache sizing: without it the manager takes 60% of RAM for its cache."""

    page_size: int
    num_blocks: int
    max_batch_tokens: int

    @classmethod
    def for_sequences(cls, longest: int, *, page_size: int = 64, max_batch_tokens: int = 256) -> CacheSizing:
        """Room for MAX_BATCH sequences of ``longest`` tokens (prompt + output) at once."""
        per_sequence = math.ceil(longest / page_size)
        return cls(page_size=page_size, num_blocks=MAX_BATCH * per_sequence, max_batch_tokens=max_batch_tokens)


class ContinuousBatchingSystem(System):
    """(c) transformers' ContinuousBatchingManager (``model.init_continuous_batching``), streaming every token."""

    key = "c"
    label = "(c) transformers CB manager"
    notes = (
        "(c) runs `paged|eager` attention, which skips Gemma-2's attention softcap (the final-logit softcap is kept)",
        "(c) takes no custom LogitsProcessor: ids beyond the tokenizer are masked through generation_config"
        ".suppress_tokens instead",
        "(c) prefix sharing is off: prompts are random and the other systems have none",
    )

    def __init__(self, model_dir: Path, vocab: int, sizing: CacheSizing) -> None:
        from transformers import ContinuousBatchingConfig, GenerationConfig

        model = load_model(model_dir)  # its own copy: the manager switches the model's attention implementation
        generation = GenerationConfig(
            do_sample=False,
            eos_token_id=-1,
            pad_token_id=model.config.pad_token_id,
            suppress_tokens=list(range(vocab, model.config.vocab_size)),
        )
        config = ContinuousBatchingConfig(
            page_size=sizing.page_size,
            num_blocks=sizing.num_blocks,
            max_batch_tokens=sizing.max_batch_tokens,
            max_requests_per_batch=MAX_BATCH,
            allow_block_sharing=False,
        )
        self.sizing = sizing
        self._manager = model.init_continuous_batching(generation_config=generation, continuous_batching_config=config)
        self._ids = itertools.count()

    async def start(self) -> None:
        self._manager.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self._manager.stop, block=True)
        self._manager.destroy()

    async def serve(self, request: Request) -> Timing:
        timing = Timing()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        request_id = f"bench-{next(self._ids)}"

        def on_output(output: Any) -> None:  # called on the event loop
            if output.generated_tokens:
                timing.mark_first()
            if output.is_finished() and not done.done():
                timing.finished, timing.tokens = perf_counter(), len(output.generated_tokens)
                if output.error:
                    done.set_exception(RuntimeError(output.error))
                else:
                    done.set_result(None)

        self._manager.register_result_handler(request_id, on_output)
        self._manager.add_request(
            list(request.prompt),
            request_id=request_id,
            max_new_tokens=request.max_new_tokens,
            streaming=True,
            eos_token_id=-1,
        )
        await done
        return timing


class GuardEngineSystem(System):
    """(d) guard's engine, through its streaming API."""

    key = "d"
    label = "(d) guard engine"

    def __init__(self, model_dir: Path, threads: int, **local: Any) -> None:
        """``local``: further engine settings (``compile``, ``quantization``), passed only when given so the
        same benchmark also drives older engine code that lacks them."""
        from guard.engine.gemma import GemmaEngine
        from guard.settings import EngineSettings, LocalEngineSettings

        dtype = local.pop("dtype", "bfloat16")
        if local.get("quantization", "none") != "none":
            self.key, self.label = f"d-{local['quantization']}", f"(d) guard engine {local['quantization']}"
        elif dtype == "float32":  # what GUARD_DTYPE=auto picks on CPUs without native bf16
            self.key, self.label = "d-fp32", "(d) guard engine float32"
        if local.get("compile"):  # GUARD_COMPILE: static-shape decode step and projection (bf16 only here)
            self.key, self.label = "d-compiled", "(d) guard engine compiled"
        self._local = LocalEngineSettings(dtype=dtype, threads=threads, **local)
        settings = EngineSettings(max_batch_size=MAX_BATCH, max_queue=256, local=self._local)
        self.engine = GemmaEngine.load(str(model_dir), settings, is_dev=False)

    def settings_summary(self) -> dict[str, Any]:
        names = ("dtype", "threads", "decode_threads", "compile", "quantization")
        return {name: getattr(self._local, name) for name in names if hasattr(self._local, name)}

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()

    async def serve(self, request: Request) -> Timing:
        from guard.engine.base import SamplingParams

        timing = Timing()
        params = SamplingParams(max_tokens=request.max_new_tokens, temperature=0.0, ignore_eos=True)
        async for delta in self.engine.stream(list(request.prompt), params):
            if delta.token_ids:
                timing.mark_first()
            if delta.finish_reason is not None:
                timing.tokens = delta.tokens_out
        timing.finished = perf_counter()
        return timing
