"""Tiny randomly initialised Gemma-2 models on the dev tokenizer, for tests that need a real architecture with
particular properties (a small softcap, a short window, no reachable end of turn)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Gemma2Config, Gemma2ForCausalLM


def tiny_gemma2(tokenizer: Any, *, seed: int, **config: Any) -> Any:
    """A random Gemma-2 sized for tests; ``config`` overrides any Gemma2Config field."""
    torch.manual_seed(seed)
    settings: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "attn_implementation": "eager",
        **config,
    }
    return Gemma2ForCausalLM(Gemma2Config(**settings)).eval()
