"""Gemma models through transformers, in-process, behind continuous batching.

Loading picks device, dtype and an attention implementation that keeps Gemma-2's softcaps (eager by default:
transformers refuses sdpa for Gemma-2). Generation runs in :class:`~guard.engine.scheduler.ContinuousBatcher`'s
worker thread: requests join and leave the running batch at step boundaries.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from guard.engine.base import (
    ChatMessage,
    EngineStats,
    Generation,
    Prompt,
    SamplingParams,
    collect,
)
from guard.engine.chat_template import render_chat, supports_system_role
from guard.engine.grammar import GrammarCompiler
from guard.engine.lean_forward import lean_forward_applies
from guard.engine.loading import (
    LoadPlan,
    choose_device,
    choose_dtype,
    load_model,
    maybe_compile,
    plan_load,
    read_model_type,
    warm_up,
)
from guard.engine.scheduler import ContinuousBatcher, SequenceStream
from guard.engine.tool_format import FunctionSpec
from guard.settings import EngineSettings

__all__ = ["GemmaEngine", "choose_device", "choose_dtype"]  # the choosers live in guard.engine.loading

logger = logging.getLogger(__name__)

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class GemmaEngine:
    """A transformers causal LM behind the :class:`~guard.engine.base.Engine` protocol."""

    name = "transformers"
    supports_logprobs = True
    supports_grammars = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        model_id: str,
        revision: str | None,
        is_dev: bool,
        settings: EngineSettings,
        plan: LoadPlan | None = None,
        compile_backend: str = "inductor",
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self.model_id = model_id
        self.revision = revision
        self.is_dev = is_dev
        self.device = str(model.device)
        self.dtype = str(model.dtype).removeprefix("torch.")
        self._plan = plan
        self.context_length = int(getattr(model.config, "max_position_embeddings", 8192))
        self._eos_ids = self._stop_token_ids()
        self._supports_system = supports_system_role(tokenizer)
        self.has_chat_template = bool(tokenizer.chat_template)
        vocab_size = int(getattr(model.config, "vocab_size", len(tokenizer)))
        self._grammars = GrammarCompiler(tokenizer, stop_token_ids=self._eos_ids, vocab_size=vocab_size)
        self._batcher = ContinuousBatcher(
            model,
            decode=lambda ids: str(tokenizer.decode(ids, skip_special_tokens=True)),
            stop_token_ids=self._eos_ids,
            servable_vocab=len(tokenizer),
            context_length=self.context_length,
            max_running=settings.max_batch_size,
            max_waiting=settings.max_queue,
            prefill_chunk=settings.local.prefill_chunk,
            grammars=self._grammars,
            decode_threads=settings.local.decode_threads if self.device == "cpu" else 0,
            # GUARD_COMPILE on Gemma-2's lean forward: static-shape decode and projection graphs (compiled_step)
            compile_backend=compile_backend if plan is not None and plan.compile else None,
        )
        details = plan.describe() if plan is not None else f"{self.device}, {self.dtype}"
        if self.device == "cpu" and settings.local.decode_threads:
            details += f", decode layers on {settings.local.decode_threads} thread(s)"
        self.description = (
            f"{model_id} ({'dev model, ' if is_dev else ''}{details}; continuous batching: "
            f"{settings.max_batch_size} slots, queue {settings.max_queue})"
        )

    @classmethod
    def load(
        cls,
        ref: str,
        settings: EngineSettings,
        *,
        is_dev: bool,
        model_id: str | None = None,
        revision: str | None = None,
    ) -> GemmaEngine:
        """Load ``ref`` (a hub id found in the local cache, or a directory) or raise :class:`EngineUnavailable`.

        The load plan (device, dtype, attention, quantization, device map, threads) is validated first, so a
        setting that would drop Gemma-2's softcap or cannot work on this machine fails before any weights load.
        ``model_id`` is the name clients see (default: ``ref``)."""
        plan = plan_load(settings.local, read_model_type(ref))
        model, tokenizer = load_model(ref, plan)
        return cls(
            model if lean_forward_applies(model) else maybe_compile(model, plan),  # lean: the batcher compiles
            tokenizer,
            model_id=model_id or ref,
            revision=revision or getattr(model.config, "_commit_hash", None),
            is_dev=is_dev,
            settings=settings,
            plan=plan,
        )

    def _stop_token_ids(self) -> list[int]:
        configured = self._model.generation_config.eos_token_id
        ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
        end_of_turn = self._tokenizer.convert_tokens_to_ids("<end_of_turn>")
        if isinstance(end_of_turn, int) and end_of_turn != self._tokenizer.unk_token_id:
            ids.add(end_of_turn)  # Gemma chat models end a turn with <end_of_turn>, not <eos>
        if self._tokenizer.eos_token_id is not None:
            ids.add(self._tokenizer.eos_token_id)
        return sorted(ids)

    def render_chat(self, messages: list[ChatMessage], tools: Sequence[FunctionSpec] = ()) -> str:
        """The prompt for a conversation in this model's template (see :mod:`guard.engine.chat_template`)."""
        return render_chat(self._tokenizer, messages, system_role=self._supports_system, tools=tools)

    def check_grammar(self, grammar: str) -> None:
        """Raise :class:`~guard.engine.grammar.InvalidGrammar` unless ``grammar`` compiles for this tokenizer."""
        self._grammars.check(grammar)

    def tokenize(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``. Chat prompts (rendered templates) carry their own ``<bos>`` and control tokens;
        raw completion prompts ask for ``<bos>`` here and any control-token spelling in them stays plain text."""
        ids = self._tokenizer(text, add_special_tokens=add_special_tokens, split_special_tokens=add_special_tokens)
        return list(ids.input_ids)

    def count_tokens(self, prompt: str) -> int:
        return len(self.tokenize(prompt))

    @lru_cache(maxsize=65536)  # noqa: B019 - one engine per process; the vocabulary bounds the cache
    def token_bytes(self, token_id: int) -> bytes:
        """A SentencePiece piece as bytes: ``▁`` is a space, ``<0xNN>`` (byte fallback) is that one byte."""
        piece = str(self._tokenizer.convert_ids_to_tokens(token_id))
        if byte := _BYTE_PIECE.fullmatch(piece):
            return bytes([int(byte.group(1), 16)])
        return piece.replace("\u2581", " ").encode()

    def stream(self, prompt: Prompt, params: SamplingParams) -> SequenceStream:
        ids = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        return self._batcher.submit(ids, params)

    async def generate(self, prompt: Prompt, params: SamplingParams) -> Generation:
        return await collect(self.stream(prompt, params))

    def stats(self) -> EngineStats:
        return self._batcher.stats()

    async def start(self) -> None:
        if self._plan is not None and self._plan.compile:  # compile before the first request, not during it
            sizes = self._batcher.warm_up_sizes
            await asyncio.to_thread(warm_up, self._plan, self._batcher.warm_up, sizes)
        self._batcher.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self._batcher.stop)
