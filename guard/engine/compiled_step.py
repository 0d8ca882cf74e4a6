"""``GUARD_COMPILE`` for Gemma-2: the decode step and the vocabulary projection compiled with static batch shapes.

Each step's rows are padded up to a bucket (powers of two up to the engine's slots), so every bucket is one graph
with static shapes, compiled once at start-up (the engine's warm-up) and never again while serving. The
decode graph is the lean Gemma-2 forward (:mod:`guard.engine.lean_forward`) over the slot cache's buffers, which
it updates in place (the cache as static buffers: the graph's inputs, not copies); only the key width and the
buffers' capacity stay symbolic (marked dynamic), so a growing sequence or a grown cache reuses the graph.
Padded rows decode token 0 at position 0 into slots no running sequence holds (running rows are ``0..n-1`` and the
free slots after them are prefilled before they are read), and their outputs are dropped.

Inductor compiles with ``freezing``: the weights become constants it may pre-pack for its matrix kernels (on CPU
oneDNN's blocked layout: on the bench model the projection read ~1.6x faster than eager's, and a step was
1.4-1.6x faster at one row, 1.2-1.5x at 32, in ``benchmarks/step_profile.py``). The packed copies cost memory
beside the model's own weights (which prefill, still eager on the lean forward, keeps reading). Gemma-1, other
attention implementations and models split across devices keep ``maybe_compile``'s path; int8 with
``GUARD_COMPILE`` is refused when the load is planned.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch

from guard.engine.kvcache import SlotKVCache, attention_masks
from guard.engine.lean_forward import LeanGemma2

__all__ = ["CompiledStep", "buckets"]


def buckets(slots: int) -> list[int]:
    """Powers of two below ``slots``, and ``slots`` itself: the batch sizes the graphs are compiled for."""
    sizes = [1 << n for n in range(slots.bit_length()) if 1 << n < slots]
    return [*sizes, slots]


class _StaticSlots:
    """The slot cache's buffers as one decode graph sees them: rows ``0..bucket-1`` each write one token at their
    own position, and read their slot's keys up to the step's width (symbolic)."""

    def __init__(
        self, keys: list[torch.Tensor], values: list[torch.Tensor], positions: torch.Tensor, width: Any
    ) -> None:
        self._keys, self._values = keys, values
        self._rows = torch.arange(positions.shape[0], device=positions.device)
        self._positions, self._width = positions, width

    def update(self, key: torch.Tensor, value: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self._keys[layer], self._values[layer]
        keys[self._rows, :, self._positions] = key[:, :, 0]
        values[self._rows, :, self._positions] = value[:, :, 0]
        rows = self._rows.shape[0]
        return keys[:rows, :, : self._width], values[:rows, :, : self._width]


class CompiledStep:
    def __init__(self, lean: LeanGemma2, model: Any, cache: SlotKVCache, *, backend: str = "inductor") -> None:
        self._lean = lean
        self._config = model.config
        self._dtype = model.dtype
        self._head = model.get_output_embeddings()
        self._cache = cache
        self.buckets = buckets(cache.slots)
        self._marked: torch.Tensor | None = None
        # ``torch.compile(options={"freezing": True})`` did not freeze here (torch 2.13): the setting is patched
        # around every call instead, so it holds whenever a graph compiles and touches no other compile.
        self._inductor_settings = torch._inductor.config.patch(freezing=backend == "inductor")
        # One graph per bucket for each function; dynamo's default limit (8 per function) would fall back to eager
        # for engines with more than 128 slots.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, len(self.buckets) + 2)
        self._decode = torch.compile(self._decode_graph, dynamic=False, backend=backend)
        self._project = torch.compile(self._project_graph, dynamic=False, backend=backend)

    def bucket(self, rows: int) -> int:
        return next(size for size in self.buckets if size >= rows)

    def _padded(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` with zero rows appended up to its bucket."""
        padding = self.bucket(tensor.shape[0]) - tensor.shape[0]
        return torch.cat([tensor, tensor.new_zeros(padding, *tensor.shape[1:])]) if padding else tensor

    def decode(self, tokens: torch.Tensor, positions: torch.Tensor, width: int) -> torch.Tensor:
        """Hidden states ``[rows, hidden]`` of one decode step: ``tokens`` and ``positions`` are ``[rows]`` for
        slots ``0..rows-1``; keys ``0..width-1`` are visible (each row's own mask hides what it must not see)."""
        rows = tokens.shape[0]
        tokens, positions = self._padded(tokens), self._padded(positions)
        keys, values = self._cache.buffers()
        if keys[0] is not self._marked:  # new buffers (the cache grew or was released): capacity stays symbolic
            for buffer in keys + values:
                torch._dynamo.mark_dynamic(buffer, 2)
            self._marked = keys[0]
        masks = attention_masks(self._config, positions[:, None], width, self._dtype)
        for mask in masks.values() if isinstance(masks, dict) else [masks]:
            torch._dynamo.mark_dynamic(mask, 3)  # the width
        with self._inductor_settings:
            return self._decode(tokens, positions, masks, keys, values)[:rows]  # type: ignore[no-any-return]

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """The vocabulary projection of ``hidden`` (``[rows, hidden]``), rows padded to a bucket."""
        with self._inductor_settings:
            return self._project(self._padded(hidden))[: hidden.shape[0]]  # type: ignore[no-any-return]

    def warm_up(self, rows: int, *, decode_threads: AbstractContextManager[None]) -> None:
        """Compile bucket ``rows``'s two graphs (the cache must hold two positions); the decode graph inside
        ``decode_threads`` (inductor's CPU kernels keep the thread count they were compiled with)."""
        zeros = torch.zeros(rows, dtype=torch.long, device=self._head.weight.device)
        with decode_threads:
            hidden = self.decode(zeros, zeros, 2)
        self.project(hidden)

    def _decode_graph(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        masks: Any,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
    ) -> torch.Tensor:
        width = next(iter(masks.values())).shape[3] if isinstance(masks, dict) else masks.shape[3]
        cache = _StaticSlots(keys, values, positions, width)
        return self._lean(tokens[:, None], positions[:, None], masks, cache)[:, -1]

    def _project_graph(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._head(hidden)  # type: ignore[no-any-return]
