"""Gemma-2's decoder forward through transformers' own modules, without the model's forward around them.

At one row a decode step's arithmetic is small and the decoder body's time is mostly per-call Python and dispatch;
transformers' ``Gemma2Model.forward`` adds its own (argument and output handling per layer, keys and values copied
``heads / kv_heads`` times for grouped-query attention, each norm's scale recomputed per call). :class:`LeanGemma2`
calls the same modules in the same order (embedding, rotary embedding, per layer the four norms, the projections,
the slot cache and the MLP, then the final norm; the norms' scales computed once) and computes attention per
key/value head with the query heads grouped, with Gemma-2's scaling, attention softcap and masks as transformers'
eager attention applies them. It serves decode steps (one query per row) and prefill chunks alike.

On a CPU without native bf16 (AVX2 only) a bf16 model's attention products run in float32: PyTorch's bf16 matrix
products there take a slow path (a 128-token prefill of the bench model spent 74 of 185 ms in them on an AVX2-only
AMD EPYC). A float32 model, or a CPU with AVX512-BF16/AMX, computes exactly as before.

The float32 fidelity tests run through it (``tests/unit/engine/test_continuous_batching.py``); the README's step
profile gives its speed. With ``GUARD_COMPILE`` its decode steps are compiled per batch bucket
(:mod:`guard.engine.compiled_step`). Other architectures, other attention implementations and a model split across
devices keep transformers' forward (:func:`lean_forward_for`).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.models.gemma2.modeling_gemma2 import apply_rotary_pos_emb

from guard.hardware import cpu_has_bf16

__all__ = ["LeanGemma2", "lean_forward_applies", "lean_forward_for"]


def lean_forward_applies(model: Any) -> bool:
    """Whether :class:`LeanGemma2` can run ``model``: Gemma-2, eager attention, not compiled, on one device."""
    config = model.config
    if getattr(config, "model_type", None) != "gemma2" or config._attn_implementation != "eager":
        return False
    if "forward" in vars(model.get_decoder()):
        return False  # transformers' forward compiled (``maybe_compile``)
    return len(set((getattr(model, "hf_device_map", None) or {"": 0}).values())) == 1  # not split by accelerate


def lean_forward_for(model: Any) -> LeanGemma2 | None:
    """The lean forward for ``model``, or None where transformers' forward must run."""
    if not lean_forward_applies(model):
        return None
    config = model.config
    decoder = model.get_decoder()
    upcast = model.dtype == torch.bfloat16 and model.device.type == "cpu" and not cpu_has_bf16()
    return LeanGemma2(decoder, config, upcast_attention=upcast)


class _Norm:
    """Gemma-2's RMSNorm with its ``1 + weight`` scale computed once (transformers recomputes it per call; the
    arithmetic is the same, so the result is too): ~23 against ~47 µs a call at one row."""

    def __init__(self, norm: Any) -> None:
        self._scale = 1.0 + norm.weight.detach().float()
        self._eps = float(norm.eps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        hidden = x.float()
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self._eps)
        return (hidden * self._scale).type_as(x)


class LeanGemma2:
    def __init__(self, decoder: Any, config: Any, *, upcast_attention: bool = False) -> None:
        self._decoder = decoder
        self._layer_types: list[str] | None = getattr(config, "layer_types", None)
        self.upcast_attention = upcast_attention
        names = (
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        )
        self._norms = [[_Norm(getattr(layer, name)) for name in names] for layer in decoder.layers]
        self._final_norm = _Norm(decoder.norm)

    def __call__(self, input_ids: torch.Tensor, positions: torch.Tensor, masks: Any, cache: Any) -> torch.Tensor:
        """Hidden states ``[rows, tokens, hidden]`` for ``input_ids`` at ``positions`` (``[rows, tokens]``): one
        token per row (decode) or a prompt chunk; ``masks`` from :func:`~guard.engine.kvcache.attention_masks`,
        ``cache`` bound for this forward."""
        decoder = self._decoder
        hidden = decoder.embed_tokens(input_ids)  # Gemma's embedding scales by sqrt(hidden) itself
        cos, sin = decoder.rotary_emb(hidden, positions)
        for index, (layer, norms) in enumerate(zip(decoder.layers, self._norms, strict=True)):
            mask = masks[self._layer_types[index]] if self._layer_types else masks
            attention = self._attend(layer.self_attn, norms[0](hidden), (cos, sin), mask, cache, index)
            hidden = hidden + norms[1](attention)
            hidden = hidden + norms[3](layer.mlp(norms[2](hidden)))
        return self._final_norm(hidden)

    def _attend(
        self,
        attention: Any,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        cache: Any,
        layer_index: int,
    ) -> torch.Tensor:
        rows, length, head_dim = x.shape[0], x.shape[1], attention.head_dim
        query = attention.q_proj(x).view(rows, length, -1, head_dim).transpose(1, 2)  # [rows, heads, length, dim]
        key = attention.k_proj(x).view(rows, length, -1, head_dim).transpose(1, 2)
        value = attention.v_proj(x).view(rows, length, -1, head_dim).transpose(1, 2)
        query, key = apply_rotary_pos_emb(query, key, *rotary)
        keys, values = cache.update(key, value, layer_index)  # [rows, kv_heads, width, dim]
        kv_heads, width = keys.shape[1], keys.shape[2]
        # Head h reads key/value head h // groups (transformers' repeat_kv): group the queries, do not copy keys.
        grouped = query.reshape(rows, kv_heads, -1, head_dim)  # [rows, kv_heads, groups * length, dim]
        if self.upcast_attention:
            grouped, keys, values = grouped.float(), keys.float(), values.float()
        scores = torch.matmul(grouped, keys.transpose(2, 3)) * attention.scaling
        softcap = attention.attn_logit_softcapping
        if softcap is not None:
            scores = torch.tanh(scores / softcap) * softcap
        # mask [rows, 1, length, width] broadcasts over kv heads and groups
        scores = scores.view(rows, kv_heads, -1, length, width) + mask[:, :, None]
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
        output = torch.matmul(weights.view(rows, kv_heads, -1, width), values)  # [rows, kv_heads, groups * length, dim]
        output = output.view(rows, -1, length, head_dim).transpose(1, 2).reshape(rows, length, -1)
        return attention.o_proj(output.to(x.dtype))  # type: ignore[no-any-return]
