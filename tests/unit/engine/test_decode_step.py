"""The lean Gemma-2 decode step computes what transformers' decoder forward computes, row by row, on the slot cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from guard.engine.decode_step import decode_step_for
from guard.engine.kvcache import SlotKVCache, attention_masks
from tests.tiny_gemma import tiny_gemma2

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.bfloat16, 0.05)])
def test_lean_step_matches_the_decoder_forward(guard_home: Path, dtype: torch.dtype, tolerance: float) -> None:
    tokenizer = AutoTokenizer.from_pretrained(guard_home / "dev-models" / "gemma-2")
    model = tiny_gemma2(tokenizer, seed=5, sliding_window=4, attn_logit_softcapping=1.0, initializer_range=0.3).to(
        dtype
    )  # a softcap and a window that change the result
    step = decode_step_for(model)
    assert step is not None
    decoder, config = model.get_decoder(), model.config
    cache = SlotKVCache(config, slots=3, dtype=dtype, device="cpu")
    cache.reserve(32)
    lengths = [9, 3, 14]  # rows at different positions, some beyond the sliding window
    with torch.inference_mode():
        for row, length in enumerate(lengths):
            prompt = torch.randint(10, 200, (1, length))
            cache.bind_prefill(row, 0, length)
            positions = torch.arange(length)[None, :]
            decoder(
                input_ids=prompt,
                position_ids=positions,
                attention_mask=attention_masks(config, positions, length, dtype),
                past_key_values=cache,
                use_cache=True,
            )
        tokens = torch.tensor([[21], [34], [55]])
        positions = torch.tensor([[n] for n in lengths])
        width = max(lengths) + 1
        masks = attention_masks(config, positions, width, dtype)
        cache.bind_decode(positions[:, 0], width)
        lean = step(tokens, positions, masks, cache)
        cache.bind_decode(positions[:, 0], width)  # the same keys and values written again
        reference = decoder(
            input_ids=tokens, position_ids=positions, attention_mask=masks, past_key_values=cache, use_cache=True
        ).last_hidden_state
    assert lean.shape == reference.shape == (3, 1, config.hidden_size)
    error = float((lean.float() - reference.float()).abs().max())
    assert error <= tolerance * float(reference.float().abs().max())
