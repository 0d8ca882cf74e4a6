"""Grammar-constrained decoding's cost in guard's engine: throughput at 16 concurrent clients with half the requests
under a JSON Schema (llguidance masks in the sampling step) against the same load all unconstrained, in one sitting.

Run by ``python benchmarks/engine.py --constrained`` (bench model, bf16, fixed threads, random weights). Each
client sends ``rounds`` requests back to back; unconstrained requests generate exactly ``new_tokens`` tokens (EOS
ignored); constrained ones end when their JSON value closes (or at ``new_tokens``): throughput is generated tokens
per second of wall time over the whole closed loop. The two variants alternate (A B A B ...) and the medians are
compared; the target is constrained >= 0.85x unconstrained.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "labels": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 4},
        "owner": {
            "type": "object",
            "properties": {
                "team": {"type": "string", "enum": ["billing", "support", "it"]},
                "priority": {"type": "integer", "minimum": 1, "maximum": 5},
            },
            "required": ["team", "priority"],
            "additionalProperties": False,
        },
        "notes": {"type": "string", "maxLength": 200},
    },
    "required": ["title", "labels", "owner", "notes"],
    "additionalProperties": False,
}
TARGET = 0.85


@dataclass(frozen=True, slots=True)
class ConstrainedPlan:
    concurrency: int = 16
    prompt_tokens: int = 128
    new_tokens: int = 128
    rounds: int = 4
    repeats: int = 3
    """How many times each variant runs (alternating); the medians are compared."""


async def _closed_loop(
    engine: Any, prompts: list[list[int]], plan: ConstrainedPlan, grammar: str | None
) -> dict[str, float]:
    from guard.engine.base import SamplingParams

    plain = SamplingParams(max_tokens=plan.new_tokens, temperature=1.0, seed=0, ignore_eos=True)
    constrained = SamplingParams(max_tokens=plan.new_tokens, temperature=1.0, seed=0, grammar=grammar)

    async def client(number: int) -> tuple[int, int]:
        tokens = finished_json = 0
        for round_ in range(plan.rounds):
            use_grammar = grammar is not None and number % 2 == 0
            params = constrained if use_grammar else plain
            prompt = prompts[(number * plan.rounds + round_) % len(prompts)]
            async for delta in engine.stream(prompt, params):
                if delta.finish_reason is not None:
                    tokens += delta.tokens_out
                    finished_json += int(use_grammar and delta.finish_reason == "stop")
        return tokens, finished_json

    started = time.perf_counter()
    results = await asyncio.gather(*(client(n) for n in range(plan.concurrency)))
    wall = time.perf_counter() - started
    tokens = sum(t for t, _ in results)
    return {"tokens": tokens, "wall_s": wall, "tok_s": tokens / wall, "json_closed": sum(j for _, j in results)}


async def run_constrained(model_dir: Path, tokenizer: Any, threads: int, plan: ConstrainedPlan) -> dict[str, Any]:
    """Both variants on one engine, alternating; returns the runs, the medians and the ratio."""
    import random

    from guard.engine.gemma import GemmaEngine
    from guard.engine.grammar import json_schema_grammar
    from guard.settings import EngineSettings, LocalEngineSettings

    settings = EngineSettings(
        max_batch_size=32, max_queue=256, local=LocalEngineSettings(dtype="bfloat16", threads=threads)
    )
    engine = GemmaEngine.load(str(model_dir), settings, is_dev=False)
    grammar = json_schema_grammar(SCHEMA)
    engine.check_grammar(grammar)
    rng = random.Random(0)
    first = len(tokenizer.all_special_ids) + 5
    prompts = [
        [tokenizer.bos_token_id] + [rng.randrange(first, len(tokenizer)) for _ in range(plan.prompt_tokens - 1)]
        for _ in range(plan.concurrency * plan.rounds)
    ]
    await engine.start()
    runs: dict[str, list[dict[str, float]]] = {"unconstrained": [], "half_constrained": []}
    try:
        await _closed_loop(engine, prompts[:4], ConstrainedPlan(concurrency=4, rounds=1, new_tokens=16), grammar)
        for _ in range(plan.repeats):
            runs["unconstrained"].append(await _closed_loop(engine, prompts, plan, None))
            runs["half_constrained"].append(await _closed_loop(engine, prompts, plan, grammar))
    finally:
        await engine.stop()
    medians = {name: statistics.median(r["tok_s"] for r in values) for name, values in runs.items()}
    ratio = medians["half_constrained"] / medians["unconstrained"]
    return {
        "plan": asdict(plan),
        "schema": SCHEMA,
        "runs": runs,
        "median_tok_s": medians,
        "ratio": ratio,
        "target": {"name": "half constrained >= 0.85x unconstrained (tok/s)", "value": TARGET, "met": ratio >= TARGET},
    }


def print_constrained(result: dict[str, Any]) -> None:
    print("constrained decoding: 16 concurrent clients, half the requests under a JSON Schema (tok/s, wall time)")
    for name, values in result["runs"].items():
        cells = ", ".join(f"{r['tok_s']:.0f} tok/s ({r['tokens']} tok, {r['wall_s']:.1f} s)" for r in values)
        print(f"  {name:17s} median {result['median_tok_s'][name]:7.1f}  runs: {cells}")
    closed = [r["json_closed"] for r in result["runs"]["half_constrained"]]
    print(f"  constrained requests whose JSON closed before max_tokens, per run: {closed}")
    met = "met" if result["target"]["met"] else "NOT met"
    print(f"  ratio {result['ratio']:.3f} (target >= {TARGET}: {met})")
