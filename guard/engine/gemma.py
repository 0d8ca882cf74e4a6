"""Gemma-2 (and other Gemma) models through transformers, in-process.

Loading picks device, dtype and an attention implementation that keeps Gemma-2's softcaps (eager by default:
transformers refuses sdpa for Gemma-2). Generation runs in the batching worker's single thread with left
padding, so prompts of different lengths share one ``generate()`` call.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from guard.engine.base import (
    ChatMessage,
    EngineUnavailable,
    Generation,
    InvalidConversation,
    SamplingParams,
)
from guard.engine.batching import BatchingWorker, Job
from guard.settings import EngineSettings

__all__ = ["GemmaEngine", "choose_device", "choose_dtype"]

logger = logging.getLogger(__name__)


def choose_device(setting: str) -> str:
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def _cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 (AVX512-BF16/AMX): there bf16 is several times faster than fp32."""
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def choose_dtype(setting: str, device: str) -> Any:
    import torch

    named = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if setting != "auto":
        return named[setting]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_has_bf16() else torch.float32


def _threads(setting: int) -> int:
    return setting or len(os.sched_getaffinity(0))


class GemmaEngine:
    """A transformers causal LM behind the :class:`~guard.engine.base.Engine` protocol."""

    name = "transformers"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        model_id: str,
        revision: str | None,
        is_dev: bool,
        settings: EngineSettings,
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self.model_id = model_id
        self.revision = revision
        self.is_dev = is_dev
        self.device = str(model.device)
        self.dtype = str(model.dtype).removeprefix("torch.")
        self.threads = _threads(settings.threads)
        self.context_length = int(getattr(model.config, "max_position_embeddings", 8192))
        self._eos_ids = self._stop_token_ids()
        self._supports_system = self._template_accepts_system()
        self._worker = BatchingWorker(
            self._run_batch, window_s=settings.batch_window_ms / 1000, max_batch=settings.max_batch_size
        )
        self.description = (
            f"{model_id} ({'dev model, ' if is_dev else ''}{self.device}, {self.dtype}, "
            f"{settings.attn_implementation} attention, {self.threads} threads)"
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

        ``model_id`` is the name clients see (default: ``ref``)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(_threads(settings.threads))
        device = choose_device(settings.device)
        dtype = choose_dtype(settings.dtype, device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(ref)
            model = AutoModelForCausalLM.from_pretrained(
                ref, dtype=dtype, attn_implementation=settings.attn_implementation
            )
        except OSError as exc:
            raise EngineUnavailable(
                f"generator model {ref!r} is not available: {str(exc).splitlines()[0]} "
                "Run `guard models pull` on a connected machine (Gemma weights are gated: accept the licence "
                "and log in with `hf auth login` first), or set GUARD_MODEL to a local directory."
            ) from None
        tokenizer.padding_side = "left"
        model.to(device).eval()
        return cls(
            model,
            tokenizer,
            model_id=model_id or ref,
            revision=revision or getattr(model.config, "_commit_hash", None),
            is_dev=is_dev,
            settings=settings,
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

    def _template_accepts_system(self) -> bool:
        if not self._tokenizer.chat_template:
            return False
        probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
        try:
            self._tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
        except Exception:
            return False
        return True

    def render_chat(self, messages: list[ChatMessage]) -> str:
        """Apply the chat template; Gemma-2 has no system role, so system text is folded into the first user turn."""
        if not self._tokenizer.chat_template:
            raise InvalidConversation("this model has no chat template: use /v1/completions")
        system = [m.content for m in messages if m.role == "system"]
        turns = [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]
        if self._supports_system and system:
            turns.insert(0, {"role": "system", "content": "\n\n".join(system)})
        elif system:
            if not turns or turns[0]["role"] != "user":
                raise InvalidConversation("a system message must be followed by a user message")
            turns[0] = {"role": "user", "content": "\n\n".join([*system, turns[0]["content"]])}
        if not turns or turns[-1]["role"] != "user":
            raise InvalidConversation("the last message must be a user message")
        try:
            return str(self._tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))
        except Exception as exc:
            raise InvalidConversation(str(exc).splitlines()[0][:200]) from None

    def count_tokens(self, prompt: str) -> int:
        return len(self._tokenizer(prompt, add_special_tokens=False).input_ids)

    async def generate(self, prompt: str, params: SamplingParams) -> Generation:
        return await self._worker.submit(prompt, params)

    async def start(self) -> None:
        await self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()

    @property
    def last_batch_size(self) -> int:
        return self._worker.last_batch_size

    def _run_batch(self, jobs: list[Job]) -> list[Generation]:
        """Runs in the worker thread: one padded ``generate()`` for jobs with compatible sampling."""
        import torch

        params = jobs[0].params
        encoded = self._tokenizer(
            [job.prompt for job in jobs], add_special_tokens=False, padding=True, return_tensors="pt"
        ).to(self._model.device)
        options: dict[str, Any] = {
            "max_new_tokens": max(job.params.max_tokens for job in jobs),
            "pad_token_id": self._tokenizer.pad_token_id,
            "eos_token_id": self._eos_ids,
        }
        if params.greedy:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            options.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None)
            if params.seed is not None:
                torch.manual_seed(params.seed)
        with torch.inference_mode():
            output = self._model.generate(**encoded, **options)
        prompt_length = encoded["input_ids"].shape[1]
        return [
            self._finish(job, output[i, prompt_length:].tolist(), int(encoded["attention_mask"][i].sum()))
            for i, job in enumerate(jobs)
        ]

    def _finish(self, job: Job, ids: list[int], tokens_in: int) -> Generation:
        """Cut one sequence at its own stop token, max_tokens and stop strings."""
        stop_at = next((i for i, token in enumerate(ids) if token in self._eos_ids), None)
        finish: Any = "length"
        if stop_at is not None and stop_at < job.params.max_tokens:
            ids, finish = ids[:stop_at], "stop"
        else:
            ids = ids[: job.params.max_tokens]
        text = self._tokenizer.decode(ids, skip_special_tokens=True)
        cuts = [i for i in (text.find(s) for s in job.params.stop if s) if i >= 0]
        if cuts:
            text, finish = text[: min(cuts)], "stop"
        return Generation(text=text, finish_reason=finish, tokens_in=tokens_in, tokens_out=len(ids))
