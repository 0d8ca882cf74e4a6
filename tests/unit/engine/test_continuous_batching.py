"""Continuous batching keeps Gemma-2 exact: every request of a concurrent mixed-length batch gets the tokens its own
unpadded eager ``model.generate`` gives (greedy, float32), on a model whose small attention softcap and short sliding
window change the tokens if either is dropped."""

from __future__ import annotations

import asyncio
import copy
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer

from guard.engine.base import EngineBusy, PromptTooLong, SamplingParams
from guard.engine.gemma import GemmaEngine
from guard.engine.loading import maybe_compile, plan_load
from guard.engine.quantize import quantize_int8
from guard.engine.scheduler import _torch_threads
from guard.settings import EngineSettings, LocalEngineSettings
from tests.tiny_gemma import tiny_gemma2

pytestmark = pytest.mark.unit

# (prompt length, max new tokens, arrival delay in seconds): long and short, arriving while others decode.
REQUESTS = [(5, 24, 0.0), (31, 9, 0.0), (12, 30, 0.02), (2, 17, 0.05), (23, 12, 0.08), (40, 20, 0.1)]


@pytest.fixture(scope="module")
def tokenizer(guard_home: Path) -> Any:
    return AutoTokenizer.from_pretrained(guard_home / "dev-models" / "gemma-2")


@pytest.fixture(scope="module")
def model(tokenizer: Any) -> Any:
    return fidelity_model(tokenizer)


def fidelity_model(tokenizer: Any) -> Any:
    return tiny_gemma2(
        tokenizer,
        seed=7,
        num_hidden_layers=4,
        sliding_window=6,  # far shorter than the prompts: dropping the window changes the tokens
        attn_logit_softcapping=2.0,  # far below the attention scores of these weights
        final_logit_softcapping=5.0,
        initializer_range=0.3,
        max_position_embeddings=256,
    )


def _prompts(tokenizer: Any) -> list[list[int]]:
    rng = random.Random(3)
    first = len(tokenizer.all_special_ids) + 5
    return [
        [tokenizer.bos_token_id] + [rng.randrange(first, len(tokenizer)) for _ in range(n - 1)] for n, *_ in REQUESTS
    ]


def _reference(model: Any, prompt: list[int], max_new: int, stop_ids: list[int]) -> list[int]:
    with torch.inference_mode():
        output = model.generate(
            torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new, eos_token_id=stop_ids, pad_token_id=0
        )
    new = output[0, len(prompt) :].tolist()
    return [t for t in new if t not in stop_ids][: len(new)] if new and new[-1] in stop_ids else new


def _references(model: Any, prompts: list[list[int]], stop_ids: list[int]) -> list[list[int]]:
    return [_reference(model, p, n, stop_ids) for p, (_, n, _) in zip(prompts, REQUESTS, strict=True)]


def _differences(a: list[list[int]], b: list[list[int]]) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


def _engine(model: Any, tokenizer: Any, **settings: Any) -> GemmaEngine:
    return GemmaEngine(
        model, tokenizer, model_id="fidelity", revision=None, is_dev=True, settings=EngineSettings(**settings)
    )


def compiled_engine(model: Any, tokenizer: Any, settings: EngineSettings) -> GemmaEngine:
    """GUARD_COMPILE's engine (float32) with dynamo's capture only (``backend="eager"``: no inductor code)."""
    plan = plan_load(LocalEngineSettings(dtype="float32", compile=True), "gemma2")
    return GemmaEngine(
        model,
        tokenizer,
        model_id="fidelity",
        revision=None,
        is_dev=True,
        settings=settings,
        plan=plan,
        compile_backend="eager",
    )


async def _run_concurrently(engine: GemmaEngine, prompts: list[list[int]]) -> list[list[int]]:
    async def one(prompt: list[int], max_new: int, delay: float) -> list[int]:
        await asyncio.sleep(delay)
        tokens: list[int] = []
        async for delta in engine.stream(prompt, SamplingParams(max_tokens=max_new, temperature=0.0)):
            tokens += delta.token_ids
        return tokens

    await engine.start()
    try:
        return list(await asyncio.gather(*(one(p, n, d) for p, (_, n, d) in zip(prompts, REQUESTS, strict=True))))
    finally:
        await engine.stop()


def _without_softcap(model: Any) -> Any:
    changed = copy.deepcopy(model)
    for layer in changed.model.layers:
        layer.self_attn.attn_logit_softcapping = None
    return changed


def _without_window(model: Any) -> Any:
    changed = copy.deepcopy(model)
    changed.config.sliding_window = 4096
    return changed


async def test_continuous_batching_is_token_identical_to_unpadded_generate(model: Any, tokenizer: Any) -> None:
    # fewer slots than requests: some wait
    engine = _engine(model, tokenizer, max_batch_size=4, local=LocalEngineSettings(prefill_chunk=8))
    stop_ids = sorted(engine._batcher._stop_ids)
    prompts = _prompts(tokenizer)
    expected = _references(model, prompts, stop_ids)

    got = await _run_concurrently(engine, prompts)

    assert got == expected
    assert engine._batcher.steps < sum(n for _, n, _ in REQUESTS)  # requests really shared decode steps
    assert engine._batcher._lean is not None  # prefill and decode ran the lean Gemma-2 forward
    # The model is sensitive to both Gemma-2 features, so an engine that dropped either could not pass.
    assert _differences(_references(_without_softcap(model), prompts, stop_ids), expected) >= 1
    assert _differences(_references(_without_window(model), prompts, stop_ids), expected) >= 1


async def test_compiled_step_keeps_the_fidelity(model: Any, tokenizer: Any) -> None:
    """GUARD_COMPILE on Gemma-2 (static-shape decode and projection graphs per batch bucket over the lean forward,
    guard.engine.compiled_step) on the staggered mixed batch: the same tokens as unpadded eager generate, with
    rows padded to buckets, finished rows compacted and new prompts admitted while others decode. Dynamo's capture
    is tested here, inductor's code generation in test_compiled_step.py."""
    settings = EngineSettings(max_batch_size=4, local=LocalEngineSettings(prefill_chunk=8))
    engine = compiled_engine(model, tokenizer, settings)
    batcher = engine._batcher
    assert batcher._compiled is not None
    assert batcher.warm_up_sizes == [1, 2, 4]
    prompts = _prompts(tokenizer)
    expected = _references(model, prompts, sorted(batcher._stop_ids))
    decoded: list[int] = []
    original = batcher._compiled.decode
    batcher._compiled.decode = lambda tokens, *rest: decoded.append(len(tokens)) or original(tokens, *rest)  # type: ignore[method-assign]

    assert await _run_concurrently(engine, prompts) == expected
    assert {1, 2, 4} <= set(decoded[3:])  # the warm-up's three, then steps of every bucket, 3 rows padded to 4 too
    assert 3 in decoded
    assert "forward" not in vars(model.get_decoder())  # transformers' forward was left alone


async def test_compiled_decoder_keeps_the_fidelity(model: Any, tokenizer: Any) -> None:
    """``maybe_compile``'s path (transformers' decoder under torch.compile, dynamic shapes: GUARD_COMPILE for the
    models the lean forward does not run) on the same staggered mixed batch: the same tokens as unpadded eager
    generate. Dynamo's capture (graph breaks, guards on the slot cache, the mask dict, batched prefill) is what is
    tested; inductor's code generation is left out (minutes on 2 cores)."""
    compiled = maybe_compile(
        copy.deepcopy(model), plan_load(LocalEngineSettings(dtype="float32", compile=True), "gemma2"), backend="eager"
    )
    assert "forward" in vars(compiled.get_decoder())
    engine = _engine(compiled, tokenizer, max_batch_size=4, local=LocalEngineSettings(prefill_chunk=8))
    assert engine._batcher._lean is None  # the compiled decoder runs every step
    prompts = _prompts(tokenizer)
    expected = _references(model, prompts, sorted(engine._batcher._stop_ids))

    assert await _run_concurrently(engine, prompts) == expected


async def test_int8_engine_keeps_the_fidelity(model: Any, tokenizer: Any) -> None:
    # GUARD_QUANTIZATION=int8 on CPU: integer products and per-row activation ranges, so batching, padding and
    # chunked prefill change nothing: the engine is token-identical to the same int8 model generating alone.
    quantized = quantize_int8(copy.deepcopy(model), "cpu")
    engine = _engine(quantized, tokenizer, max_batch_size=4, local=LocalEngineSettings(prefill_chunk=8))
    stop_ids = sorted(engine._batcher._stop_ids)
    prompts = _prompts(tokenizer)
    expected = _references(quantized, prompts, stop_ids)
    assert engine._batcher._lean is not None

    assert await _run_concurrently(engine, prompts) == expected
    assert engine._batcher.steps < sum(n for _, n, _ in REQUESTS)


async def test_prompts_arriving_together_are_prefilled_together_and_stay_exact(model: Any, tokenizer: Any) -> None:
    # Lengths within 2x of each other form one right-padded prefill group; chunks of 8 make rows drop out early.
    engine = _engine(model, tokenizer, max_batch_size=8, local=LocalEngineSettings(prefill_chunk=8))
    stop_ids = sorted(engine._batcher._stop_ids)
    rng = random.Random(5)
    first = len(tokenizer.all_special_ids) + 5
    lengths = (11, 23, 13, 17)
    prompts = [[tokenizer.bos_token_id] + [rng.randrange(first, len(tokenizer)) for _ in range(n)] for n in lengths]
    expected = [_reference(model, prompt, 10, stop_ids) for prompt in prompts]
    batcher = engine._batcher
    prefilled: list[int] = []
    original = batcher._prefill
    batcher._prefill = lambda group, slot: prefilled.append(len(group)) or original(group, slot)  # type: ignore[method-assign]
    await engine.start()
    try:
        with batcher._wake:  # the worker cannot admit anything until all four are queued
            streams = [engine.stream(p, SamplingParams(max_tokens=10, temperature=0.0)) for p in prompts]
        got = []
        for stream in streams:
            tokens: list[int] = []
            async for delta in stream:
                tokens += delta.token_ids
            got.append(tokens)
    finally:
        await engine.stop()
    assert prefilled == [4]  # one batched prefill for all four
    assert got == expected


async def test_queue_bound_and_context_limit(model: Any, tokenizer: Any) -> None:
    engine = _engine(model, tokenizer, max_batch_size=1, max_queue=1)
    await engine.start()
    try:
        with pytest.raises(PromptTooLong, match="exceeds the model's context"):
            await engine.generate([2] * 200, SamplingParams(max_tokens=100, temperature=0.0))
        first = asyncio.create_task(engine.generate([2, 9, 10], SamplingParams(max_tokens=40, temperature=0.0)))
        await asyncio.sleep(0.05)  # the first is running; the second waits; the third finds the queue full
        second = asyncio.create_task(engine.generate([2, 9, 11], SamplingParams(max_tokens=5, temperature=0.0)))
        await asyncio.sleep(0)
        with pytest.raises(EngineBusy):
            await engine.generate([2, 9, 12], SamplingParams(max_tokens=5, temperature=0.0))
        assert (await first).tokens_out == 40
        assert (await second).tokens_out == 5
    finally:
        await engine.stop()


async def test_cancelled_request_frees_its_slot(model: Any, tokenizer: Any) -> None:
    engine = _engine(model, tokenizer, max_batch_size=2)
    await engine.start()
    try:
        params = SamplingParams(max_tokens=200, temperature=0.0, ignore_eos=True)
        task = asyncio.create_task(engine.generate([2, 9, 10], params))
        for _ in range(200):  # polling: the engine has no event for "admitted"
            if engine.stats().running:
                break
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):
            if engine.stats().running == 0:
                break
            await asyncio.sleep(0.005)
        assert engine.stats().running == 0
        assert engine.stats().healthy
    finally:
        await engine.stop()


async def test_seeded_sampling_does_not_depend_on_batch_company(model: Any, tokenizer: Any) -> None:
    engine = _engine(model, tokenizer, max_batch_size=8)
    params = SamplingParams(max_tokens=12, temperature=0.9, top_p=0.9, top_k=50, seed=11, ignore_eos=True)
    other = SamplingParams(max_tokens=20, temperature=1.0, seed=5, ignore_eos=True)
    await engine.start()
    try:
        alone = await engine.generate([2, 30, 31, 32], params)
        crowd = await asyncio.gather(
            engine.generate([2, 30, 31, 32], params), *(engine.generate([2, 40 + i], other) for i in range(3))
        )
    finally:
        await engine.stop()
    assert crowd[0] == alone
    assert alone.tokens_out == 12


async def test_decode_layers_on_their_own_thread_count_keep_the_fidelity(model: Any, tokenizer: Any) -> None:
    # GUARD_DECODE_THREADS: the decoder layers of decode steps run on one torch thread, the projection and prefill on
    # the engine's own count; the tokens do not change and the worker's count is restored after every step.
    engine = _engine(model, tokenizer, max_batch_size=4, local=LocalEngineSettings(prefill_chunk=8, decode_threads=1))
    stop_ids = sorted(engine._batcher._stop_ids)
    prompts = _prompts(tokenizer)
    seen: list[int] = []
    decode_hidden = engine._batcher._decode_hidden

    def counting(sequences: Any) -> Any:
        seen.append(torch.get_num_threads())
        return decode_hidden(sequences)

    engine._batcher._decode_hidden = counting  # type: ignore[method-assign]
    assert await _run_concurrently(engine, prompts) == _references(model, prompts, stop_ids)
    assert seen
    assert set(seen) == {1}


def test_torch_threads_restores_the_count() -> None:
    before = torch.get_num_threads()
    with _torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with _torch_threads(0):
        assert torch.get_num_threads() == before
