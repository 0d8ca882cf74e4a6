"""Grammar-constrained decoding (llguidance masks in the scheduler's sampling step): constrained rows produce text
their grammar accepts, unconstrained rows in the same batch keep exactly the tokens of a batch without them, and a
grammar that cannot be compiled is refused before it reaches the engine's worker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from guard.devmodels.script import TOOL_SCRIPT
from guard.engine.base import ChatMessage, SamplingParams
from guard.engine.gemma import GemmaEngine
from guard.engine.grammar import InvalidGrammar, json_schema_grammar
from guard.engine.tool_format import FunctionSpec, parse_calls, tool_call_grammar
from guard.settings import EngineSettings, LocalEngineSettings
from tests.unit.engine.test_continuous_batching import (
    REQUESTS,
    _engine,
    _prompts,
    _references,
    compiled_engine,
    fidelity_model,
)

pytestmark = pytest.mark.unit

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 12},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
        "owner": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 10},
                "age": {"type": "integer", "minimum": 0, "maximum": 120},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        "done": {"type": "boolean"},
    },
    "required": ["title", "tags", "owner", "done"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tokenizer(guard_home: Path) -> Any:
    return AutoTokenizer.from_pretrained(guard_home / "dev-models" / "gemma-2")


@pytest.fixture(scope="module")
def dev_engine(guard_home: Path, tokenizer: Any) -> GemmaEngine:
    model = AutoModelForCausalLM.from_pretrained(guard_home / "dev-models" / "gemma-2").eval()
    return GemmaEngine(model, tokenizer, model_id="dev", revision=None, is_dev=True, settings=EngineSettings())


async def _collect(engine: GemmaEngine, prompt: Any, params: SamplingParams) -> tuple[list[int], str, str | None]:
    tokens: list[int] = []
    text = ""
    finish = None
    async for delta in engine.stream(prompt, params):
        tokens += delta.token_ids
        text += delta.text
        finish = delta.finish_reason or finish
    return tokens, text, finish


async def test_unconstrained_rows_are_exact_beside_constrained_ones(tokenizer: Any) -> None:
    model = fidelity_model(tokenizer)
    engine = _engine(model, tokenizer, max_batch_size=4, local=LocalEngineSettings(prefill_chunk=8))
    stop_ids = sorted(engine._batcher._stop_ids)
    prompts = _prompts(tokenizer)
    expected = _references(model, prompts, stop_ids)
    grammar = json_schema_grammar(SCHEMA)

    async def plain(index: int) -> list[int]:
        _, max_new, delay = REQUESTS[index]
        await asyncio.sleep(delay)
        tokens, _, _ = await _collect(engine, prompts[index], SamplingParams(max_tokens=max_new, temperature=0.0))
        return tokens

    async def constrained(index: int) -> tuple[str, str | None]:
        await asyncio.sleep(REQUESTS[index][2])
        params = SamplingParams(max_tokens=200, temperature=1.0, seed=index, grammar=grammar)
        _, text, finish = await _collect(engine, prompts[index], params)
        return text, finish

    await engine.start()
    try:
        results = await asyncio.gather(
            *(plain(i) for i in range(len(REQUESTS))), *(constrained(i) for i in range(len(REQUESTS)))
        )
    finally:
        await engine.stop()
    assert list(results[: len(REQUESTS)]) == expected  # not one token of an unconstrained neighbour changed
    for text, finish in results[len(REQUESTS) :]:
        assert finish == "stop"
        jsonschema.validate(json.loads(text), SCHEMA)


def test_uncompilable_schema_and_grammar_are_refused(dev_engine: GemmaEngine) -> None:
    with pytest.raises(InvalidGrammar):
        dev_engine.check_grammar(json_schema_grammar({"type": "object", "properties": {"a": {"type": "strnig"}}}))
    with pytest.raises(InvalidGrammar):
        dev_engine.check_grammar("start: undefined_rule")
    with pytest.raises(InvalidGrammar):
        json_schema_grammar([1, 2])  # type: ignore[arg-type]
    dev_engine.check_grammar(json_schema_grammar(SCHEMA))


def _weather() -> FunctionSpec:
    function = TOOL_SCRIPT.function
    return FunctionSpec(function["name"], function["description"], function["parameters"])


def _prompt(engine: GemmaEngine, text: str, tools: list[FunctionSpec]) -> str:
    return engine.render_chat([ChatMessage(role="user", content=text)], tools)


async def test_tool_choice_modes_on_the_dev_model(dev_engine: GemmaEngine) -> None:
    weather = _weather()
    other = FunctionSpec("create_ticket", "Open a ticket.", SCHEMA)
    tools = [weather, other]
    await dev_engine.start()
    try:
        # auto, the scripted tool offered: the scripted prompt gets the scripted call
        auto = tool_call_grammar([weather], "auto", parallel=True)
        params = SamplingParams(max_tokens=64, temperature=0.0, grammar=auto)
        _, text, finish = await _collect(dev_engine, _prompt(dev_engine, TOOL_SCRIPT.prompt, [weather]), params)
        calls = parse_calls(text)
        assert finish == "stop"
        assert calls is not None
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [
            ("get_weather", json.loads(TOOL_SCRIPT.arguments))
        ]
        # auto, with nothing to call a tool for: text
        _, text, _ = await _collect(dev_engine, _prompt(dev_engine, "Why is the sky blue?", [weather]), params)
        assert parse_calls(text) is None
        assert text.strip()
        # named, sampled: every answer is a call of that function with valid arguments
        named = tool_call_grammar(tools, "create_ticket", parallel=False)
        for seed in range(5):
            params = SamplingParams(max_tokens=200, temperature=1.0, seed=seed, grammar=named)
            _, text, finish = await _collect(dev_engine, _prompt(dev_engine, "Open a ticket for me.", tools), params)
            calls = parse_calls(text)
            assert calls is not None, text
            assert finish == "stop"
            assert [c.name for c in calls] == ["create_ticket"]
            jsonschema.validate(json.loads(calls[0].arguments), SCHEMA)
    finally:
        await dev_engine.stop()


async def test_the_compiled_step_carries_grammars_logprobs_and_seeded_sampling(tokenizer: Any) -> None:
    """GUARD_COMPILE's static-shape step (dynamo capture; float32) under the same mixed batch as the eager engine:
    greedy rows with logprobs, grammar-constrained rows sampled with seeds: identical tokens, texts and logprobs."""
    model = fidelity_model(tokenizer)
    prompts = _prompts(tokenizer)
    grammar = json_schema_grammar(SCHEMA)
    settings = EngineSettings(max_batch_size=4, local=LocalEngineSettings(prefill_chunk=8))

    async def workload(engine: GemmaEngine) -> list[Any]:
        async def one(index: int, constrained: bool) -> Any:
            _, max_new, delay = REQUESTS[index]
            await asyncio.sleep(delay)
            if constrained:
                params = SamplingParams(max_tokens=200, temperature=1.0, seed=index, grammar=grammar)
                return await _collect(engine, prompts[index], params)
            stream = engine.stream(prompts[index], SamplingParams(max_tokens=max_new, temperature=0.0, logprobs=3))
            return [(delta.token_ids, delta.logprobs) async for delta in stream]

        await engine.start()
        try:
            return list(await asyncio.gather(*(one(i, c) for i in range(len(REQUESTS)) for c in (False, True))))
        finally:
            await engine.stop()

    eager = await workload(GemmaEngine(model, tokenizer, model_id="f", revision=None, is_dev=True, settings=settings))
    compiled = compiled_engine(model, tokenizer, settings)
    assert compiled._batcher._compiled is not None
    got = await workload(compiled)

    assert got[1::2] == eager[1::2]  # the constrained, seeded rows: the same texts
    # the greedy rows: the same tokens and top ids; logprobs equal to float32 rounding (padded rows change a batch)
    assert [[(ids, [(lp.token_id, [t for t, _ in lp.top]) for lp in lps]) for ids, lps in r] for r in got[::2]] == [
        [(ids, [(lp.token_id, [t for t, _ in lp.top]) for lp in lps]) for ids, lps in r] for r in eager[::2]
    ]
    values = [[lp.logprob, *(v for _, v in lp.top)] for r in eager[::2] for _, lps in r for lp in lps]
    compiled_values = [[lp.logprob, *(v for _, v in lp.top)] for r in got[::2] for _, lps in r for lp in lps]
    assert len(values) == sum(n for _, n, _ in REQUESTS)  # every greedy token carried its logprobs
    torch.testing.assert_close(torch.tensor(compiled_values), torch.tensor(values), rtol=0, atol=1e-5)
    for _, text, finish in eager[1::2]:
        assert finish == "stop"
        jsonschema.validate(json.loads(text), SCHEMA)
