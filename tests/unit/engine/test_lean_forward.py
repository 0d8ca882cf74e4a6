"""The lean Gemma-2 forward computes what transformers' decoder forward computes, on the slot cache: prefill chunks
and decode steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from guard.engine import lean_forward
from guard.engine.kvcache import SlotKVCache, attention_masks
from guard.engine.lean_forward import lean_forward_for
from tests.tiny_gemma import tiny_gemma2

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.bfloat16, 0.05)])
def test_lean_forward_matches_the_decoder_forward(guard_home: Path, dtype: torch.dtype, tolerance: float) -> None:
    tokenizer = AutoTokenizer.from_pretrained(guard_home / "dev-models" / "gemma-2")
    model = tiny_gemma2(tokenizer, seed=5, sliding_window=4, attn_logit_softcapping=1.0, initializer_range=0.3).to(
        dtype
    )  # a softcap and a window that change the result
    lean = lean_forward_for(model)
    assert lean is not None
    decoder, config = model.get_decoder(), model.config
    cache = SlotKVCache(config, slots=3, dtype=dtype, device="cpu")
    cache.reserve(32)
    lengths = [9, 3, 14]  # rows at different positions, some beyond the sliding window
    with torch.inference_mode():
        for row, length in enumerate(lengths):
            prompt = torch.randint(10, 200, (1, length))
            positions = torch.arange(length)[None, :]
            masks = attention_masks(config, positions, length, dtype)
            cache.bind_prefill(row, 0, length)
            prefilled = lean(prompt, positions, masks, cache)
            cache.bind_prefill(row, 0, length)  # the same keys and values written again
            expected = decoder(
                input_ids=prompt, position_ids=positions, attention_mask=masks, past_key_values=cache, use_cache=True
            ).last_hidden_state
            assert _relative_error(prefilled, expected) <= tolerance
        tokens = torch.tensor([[21], [34], [55]])
        positions = torch.tensor([[n] for n in lengths])
        width = max(lengths) + 1
        masks = attention_masks(config, positions, width, dtype)
        cache.bind_decode(positions[:, 0], width)
        decoded = lean(tokens, positions, masks, cache)
        cache.bind_decode(positions[:, 0], width)  # the same keys and values written again
        reference = decoder(
            input_ids=tokens, position_ids=positions, attention_mask=masks, past_key_values=cache, use_cache=True
        ).last_hidden_state
    assert decoded.shape == reference.shape == (3, 1, config.hidden_size)
    assert _relative_error(decoded, reference) <= tolerance


def test_bf16_attention_runs_in_float32_only_on_cpus_without_native_bf16(
    guard_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(guard_home / "dev-models" / "gemma-2")
    model = tiny_gemma2(tokenizer, seed=5)
    for native, dtype, upcast in [
        (False, torch.bfloat16, True),
        (True, torch.bfloat16, False),
        (False, torch.float32, False),
    ]:
        monkeypatch.setattr(lean_forward, "cpu_has_bf16", lambda native=native: native)
        lean = lean_forward_for(model.to(dtype))
        assert lean is not None
        assert lean.upcast_attention is upcast


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.float() - expected.float()).abs().max()) / float(expected.float().abs().max())
