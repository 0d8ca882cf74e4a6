"""A slot-based key/value cache for continuous batching over a transformers model's own forward.

Row ``i`` of every layer's buffer belongs to the sequence in slot ``i``; each row has its own length, so
sequences of different lengths decode in one forward without padding their prompts. The model's attention layers
call :meth:`SlotKVCache.update` (the duck-typed part of transformers' ``Cache`` they use) and get back this step's
keys and values; :func:`attention_masks` builds the additive masks (causal, and Gemma-2's sliding window per layer
type) that hide unused cache positions, so each row attends to exactly the keys its own unpadded run would see.
The attention implementation (eager, flash, flex) still applies Gemma-2's attention softcap itself.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["SlotKVCache", "attention_masks"]

_GROWTH = 256
"""Capacity grows in steps of this many positions (fewer reallocations; a copy per growth)."""


class SlotKVCache:
    def __init__(self, config: Any, *, slots: int, dtype: torch.dtype, device: torch.device | str) -> None:
        self.num_layers = int(config.num_hidden_layers)
        self.kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
        self.max_positions = int(getattr(config, "max_position_embeddings", 8192))
        self.slots = slots
        self.dtype = dtype
        self.device = torch.device(device)
        self.capacity = 0
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        # What the next forward writes: decode (one token per row at ``positions``) or prefill (a chunk of one slot).
        self._rows: torch.Tensor | None = None
        self._positions: torch.Tensor | None = None
        self._width = 0
        self._slot = 0
        self._count = 1
        self._start = 0
        self._length = 0

    # -- capacity -------------------------------------------------------------------------------------------------

    def reserve(self, positions: int) -> None:
        """Make room for ``positions`` tokens per slot (reallocating and copying when the buffers must grow)."""
        if positions <= self.capacity:
            return
        capacity = min(-(-positions // _GROWTH) * _GROWTH, max(self.max_positions, positions))
        shape = (self.slots, self.kv_heads, capacity, self.head_dim)
        keys = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.num_layers)]
        values = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.num_layers)]
        for old, new in zip(self._keys + self._values, keys + values, strict=False):  # nothing to copy at first
            new[:, :, : self.capacity].copy_(old)
        self._keys, self._values, self.capacity = keys, values, capacity

    def release(self) -> None:
        """Free the buffers (called when no sequence is running)."""
        self._keys, self._values, self.capacity = [], [], 0

    def move(self, source: int, target: int, length: int) -> None:
        """Copy slot ``source``'s first ``length`` positions into slot ``target`` (keeps running rows contiguous)."""
        for buffer in self._keys + self._values:
            buffer[target, :, :length].copy_(buffer[source, :, :length])

    def buffers(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every layer's key and value buffers, ``[slots, kv_heads, capacity, head_dim]`` (a compiled decode step
        writes and reads them in place: :mod:`guard.engine.compiled_step`)."""
        return self._keys, self._values

    # -- what the next forward writes -----------------------------------------------------------------------------

    def bind_decode(self, positions: torch.Tensor, width: int) -> None:
        """Rows ``0..len(positions)-1`` each write one token at their own position; keys ``0..width-1`` are read.

        Set once per step, not per layer: the row index and the width (a device sync) are the same for all layers."""
        self._rows = torch.arange(positions.shape[0], device=self.device)
        self._positions, self._width = positions, width

    def bind_prefill(self, slot: int, start: int, length: int, count: int = 1) -> None:
        """Slots ``slot..slot+count-1`` each write ``length`` prompt tokens at positions ``start..start+length-1``
        (a batched prefill: shorter prompts are right-padded, see :mod:`guard.engine.prefill`)."""
        self._rows, self._positions = None, None
        self._slot, self._start, self._length, self._count = slot, start, length, count

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self._keys[layer_idx], self._values[layer_idx]
        if self._rows is not None:  # decode: key_states is [rows, kv_heads, 1, head_dim]
            keys[self._rows, :, self._positions] = key_states[:, :, 0]
            values[self._rows, :, self._positions] = value_states[:, :, 0]
            count = len(self._rows)
            return keys[:count, :, : self._width], values[:count, :, : self._width]
        end, slots = self._start + self._length, slice(self._slot, self._slot + self._count)
        keys[slots, :, self._start : end] = key_states
        values[slots, :, self._start : end] = value_states
        return keys[slots, :, :end], values[slots, :, :end]


def attention_masks(
    config: Any, query_positions: torch.Tensor, width: int, dtype: torch.dtype
) -> dict[str, torch.Tensor] | torch.Tensor:
    """Additive masks ``[rows, 1, queries, width]`` for queries at ``query_positions`` (``[rows, queries]``).

    Key ``k`` is visible to a query at ``q`` when ``k <= q`` and, on sliding-window layers, ``k > q - window``
    (transformers' own rule). Models with per-layer attention types (Gemma-2) get a dict by type, as their forward
    accepts; others get one tensor."""
    keys = torch.arange(width, device=query_positions.device)
    queries = query_positions[:, None, :, None]
    visible = keys <= queries
    blocked = torch.finfo(dtype).min

    def additive(allowed: torch.Tensor) -> torch.Tensor:
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, blocked)

    layer_types = getattr(config, "layer_types", None)
    if not layer_types:
        return additive(visible)
    masks = {}
    for layer_type in set(layer_types):
        allowed = visible
        if layer_type == "sliding_attention" and config.sliding_window:
            allowed = visible & (keys > queries - int(config.sliding_window))
        masks[layer_type] = additive(allowed)
    return masks
