"""GUARD_COMPILE's static-shape decode step (``guard.engine.compiled_step``): one graph per batch bucket that
stays valid while keys grow and the cache is reallocated, the same hidden states and logits as the eager lean
forward, and inductor's real code generation (frozen weights) on a tiny Gemma-2."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from torch._dynamo.utils import counters
from transformers import AutoTokenizer

from guard.engine.compiled_step import CompiledStep, buckets
from guard.engine.kvcache import SlotKVCache, attention_masks
from guard.engine.lean_forward import lean_forward_for
from tests.unit.engine.test_continuous_batching import fidelity_model

pytestmark = pytest.mark.unit

SLOTS = 4


@pytest.fixture(scope="module")
def model(guard_home: Path) -> Any:
    return fidelity_model(AutoTokenizer.from_pretrained(guard_home / "dev-models" / "gemma-2")).eval()


def _prefilled(model: Any, lengths: list[int]) -> SlotKVCache:
    """A slot cache whose slot ``i`` holds a random prompt of ``lengths[i]`` tokens, prefilled by the lean forward."""
    lean = lean_forward_for(model)
    assert lean is not None
    cache = SlotKVCache(model.config, slots=SLOTS, dtype=model.dtype, device="cpu")
    generator = torch.Generator().manual_seed(len(lengths))
    with torch.inference_mode():  # as the engine's worker allocates its buffers
        cache.reserve(max(lengths) + 8)
        for slot, length in enumerate(lengths):
            ids = torch.randint(10, model.config.vocab_size, (1, length), generator=generator)
            positions = torch.arange(length)[None, :]
            cache.bind_prefill(slot, 0, length)
            lean(ids, positions, attention_masks(model.config, positions, length, model.dtype), cache)
    return cache


def _eager_decode(model: Any, cache: SlotKVCache, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    lean = lean_forward_for(model)
    assert lean is not None
    width = int(positions.max()) + 1
    cache.bind_decode(positions, width)
    masks = attention_masks(model.config, positions[:, None], width, model.dtype)
    return lean(tokens[:, None], positions[:, None], masks, cache)[:, -1]


def _copy(cache: SlotKVCache) -> SlotKVCache:
    twin = copy.copy(cache)
    keys, values = cache.buffers()
    twin._keys, twin._values = [k.clone() for k in keys], [v.clone() for v in values]
    return twin


def test_buckets_are_powers_of_two_up_to_the_slots() -> None:
    assert buckets(1) == [1]
    assert buckets(4) == [1, 2, 4]
    assert buckets(6) == [1, 2, 4, 6]
    assert buckets(32) == [1, 2, 4, 8, 16, 32]


def test_one_graph_per_bucket_across_widths_and_a_reallocated_cache(model: Any) -> None:
    """Rows padded to their bucket decode exactly as the eager lean forward does (the padding writes only free
    slots); a longer key width and a grown cache reuse the bucket's graph; another bucket compiles another."""
    lengths = [7, 12, 3]
    cache = _prefilled(model, lengths)
    reference = _copy(cache)
    lean = lean_forward_for(model)
    assert lean is not None
    step = CompiledStep(lean, model, cache, backend="eager")
    tokens = torch.tensor([21, 22, 23])
    graphs = counters["stats"]["unique_graphs"]

    with torch.inference_mode():
        for turn in range(3):
            positions = torch.tensor(lengths) + turn
            if turn == 2:  # the cache grows (new, larger buffers: the capacity is symbolic in the graph)
                grown = cache.capacity + 300
                for twin in (cache, reference):
                    twin.reserve(grown)
                assert cache.capacity > 300
            got = step.decode(tokens, positions, int(positions.max()) + 1)
            want = _eager_decode(model, reference, tokens, positions)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            assert counters["stats"]["unique_graphs"] == graphs + 1  # three rows padded to 4: one graph
            keys, want_keys = cache.buffers()[0][0], reference.buffers()[0][0]
            torch.testing.assert_close(keys[:3], want_keys[:3], rtol=1e-5, atol=1e-5)  # the cache written alike
        torch.testing.assert_close(step.project(got), model.lm_head(want), rtol=1e-5, atol=1e-5)
        step.decode(tokens[:1], torch.tensor([lengths[0] + 3]), lengths[0] + 4)
    assert counters["stats"]["unique_graphs"] == graphs + 3  # the projection's graph, then bucket 1's decode


def test_inductor_compiles_the_frozen_step_and_it_agrees_with_eager(model: Any) -> None:
    """The real path: inductor with frozen weights, one bucket, float32 (its kernels may sum in another order)."""
    lengths = [9, 5]
    cache = _prefilled(model, lengths)
    reference = _copy(cache)
    lean = lean_forward_for(model)
    assert lean is not None
    step = CompiledStep(lean, model, cache)
    tokens, positions = torch.tensor([31, 32]), torch.tensor(lengths)

    with torch.inference_mode():
        got = step.decode(tokens, positions, int(positions.max()) + 1)
        want = _eager_decode(model, reference, tokens, positions)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(step.project(got), model.lm_head(want), rtol=1e-4, atol=1e-4)
    assert not torch._inductor.config.freezing  # frozen only inside the step's own calls
