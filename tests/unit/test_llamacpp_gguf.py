"""The pure parts of benchmarks/llamacpp.py's GGUF writer: names, hyper-parameters, norms, vocabulary.

Neither the gguf package nor a llama.cpp build is needed (CI never builds llama.cpp); the writer's full round trip
and llama.cpp's agreement with transformers are checked by ``python benchmarks/llamacpp.py --check``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.unit

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def _benchmark_module(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))  # benchmarks/ scripts import their siblings by bare name
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def llamacpp() -> ModuleType:
    return _benchmark_module("llamacpp")


def bench_config() -> dict[str, Any]:
    """The bench model's config (benchmarks/model.py) as its saved config.json spells it."""
    config: dict[str, Any] = _benchmark_module("model").CONFIG
    return config | {
        "model_type": "gemma2",
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
    }


def test_tensor_names_follow_llama_cpp_gemma2(llamacpp: ModuleType) -> None:
    name = llamacpp.gguf_tensor_name
    assert name("model.embed_tokens.weight") == "token_embd.weight"
    assert name("model.norm.weight") == "output_norm.weight"
    assert name("lm_head.weight") is None  # tied: llama.cpp reuses the embedding
    assert name("model.layers.3.self_attn.o_proj.weight") == "blk.3.attn_output.weight"
    assert name("model.layers.0.post_attention_layernorm.weight") == "blk.0.post_attention_norm.weight"
    assert name("model.layers.7.pre_feedforward_layernorm.weight") == "blk.7.ffn_norm.weight"
    assert name("model.layers.7.post_feedforward_layernorm.weight") == "blk.7.post_ffw_norm.weight"
    assert name("model.layers.12.mlp.down_proj.weight") == "blk.12.ffn_down.weight"
    with pytest.raises(ValueError, match="no GGUF name"):
        name("model.layers.0.self_attn.rotary_emb.inv_freq")


def test_norms_are_stored_as_one_plus_w_in_float32(llamacpp: ModuleType) -> None:
    w = torch.tensor([0.0, -0.5, 1e-3], dtype=torch.bfloat16)
    stored = llamacpp.stored_norm(w)
    assert stored.dtype == torch.float32
    # 1 + 1e-3 is not representable in bf16: adding in float32 keeps it.
    assert torch.equal(stored, w.float() + 1.0)
    assert stored[2] != 1.0
    assert llamacpp.is_norm("blk.0.post_ffw_norm.weight")
    assert not llamacpp.is_norm("blk.0.ffn_down.weight")


def test_hparams_from_the_bench_config(llamacpp: ModuleType) -> None:
    hp = llamacpp.Gemma2Hparams.from_config(bench_config())
    assert (hp.embedding_length, hp.block_count, hp.feed_forward_length) == (512, 8, 2048)
    assert (hp.head_count, hp.head_count_kv, hp.head_dim) == (8, 4, 64)
    assert (hp.attn_logit_softcapping, hp.final_logit_softcapping) == (50.0, 30.0)
    assert hp.sliding_layers == (True, False) * 4
    assert (hp.sliding_window, hp.rope_freq_base, hp.rms_norm_eps) == (4096, 10000.0, 1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"query_pre_attn_scalar": 256}, "query_pre_attn_scalar"),
        ({"tie_word_embeddings": False}, "tied"),
        ({"model_type": "gemma3"}, "not a Gemma-2"),
        ({"hidden_activation": "gelu"}, "GELU"),
    ],
)
def test_hparams_refuse_what_llama_cpp_would_compute_differently(
    llamacpp: ModuleType, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        llamacpp.Gemma2Hparams.from_config(bench_config() | change)


def test_vocabulary_is_padded_with_unused_pieces(llamacpp: ModuleType) -> None:
    tokenizer = {
        "model": {
            "unk_token": "<unk>",
            "vocab": {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<0x0A>": 4, "▁the": 5},
        },
        "added_tokens": [
            {"id": i, "content": c, "special": True} for i, c in enumerate(["<pad>", "<eos>", "<bos>", "<unk>"])
        ],
    }
    vocab = llamacpp.vocabulary(tokenizer, 8)
    assert vocab.tokens[:6] == ["<pad>", "<eos>", "<bos>", "<unk>", "<0x0A>", "▁the"]
    assert len(set(vocab.tokens)) == 8
    c, u, n, b, unused = llamacpp.CONTROL, llamacpp.UNKNOWN, llamacpp.NORMAL, llamacpp.BYTE, llamacpp.UNUSED
    assert vocab.types == [c, c, c, u, b, n, unused, unused]
    assert (vocab.bos, vocab.eos, vocab.unk, vocab.pad) == (2, 1, 3, 0)
    assert vocab.scores == sorted(vocab.scores, reverse=True)
    with pytest.raises(ValueError, match="does not fit"):
        llamacpp.vocabulary(tokenizer, 4)


def test_requests_ask_for_exact_greedy_uncached_completions(llamacpp: ModuleType) -> None:
    body = llamacpp.completion_body(llamacpp.Request((2, 10, 11), "", 128), stream=True)
    assert body["prompt"] == [2, 10, 11]
    assert (body["n_predict"], body["ignore_eos"], body["cache_prompt"], body["stream"]) == (128, True, False, True)
    assert (body["samplers"], body["top_k"]) == (["top_k"], 1)
