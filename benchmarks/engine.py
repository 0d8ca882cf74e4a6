"""Serve a Gemma-2-shaped ~160M model four ways, side by side in one process and one run, and compare.

(a) the model card's ``pipeline("text-generation")``, one request at a time; (b) padded static batching with
``model.generate``; (c) transformers' ContinuousBatchingManager; (d) guard's engine, and (d-int8) the same engine with
``GUARD_QUANTIZATION=int8`` (int8 linear layers, PyTorch's quantized linear on CPU), (d-fp32) in float32 and
(d-compiled) with ``GUARD_COMPILE=1`` (static-shape decode graphs per batch bucket, inductor); then, as the outside
reference, (e) and (e-q8) llama.cpp's ``llama-server`` on the same weights as GGUF bf16 and Q8_0 (another process;
benchmarks/llamacpp.py, skipped unless built). bf16, fixed threads, greedy, EOS ignored (exact new-token counts),
warm-up excluded. Workloads: closed loops at concurrency 1/4/16/32 with 128-token prompts and 128 new tokens, then
200 Poisson arrivals with mixed lengths at 0.8x (b)'s measured capacity.
Last, (d)'s decode-step profile (body, projection, head, bookkeeping; ``step_profile.py``) at batch 1 and 32.

    python benchmarks/engine.py [--quick] [--systems a,b,c,d,d-int8,d-fp32,d-compiled,e,e-q8] [--threads N]
                                 [--decode-threads N] [--out DIR]
    python benchmarks/engine.py --constrained   # (d) only: half the requests under a JSON Schema vs none
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from llamacpp import llama_factories
from model import MANIFEST, ensure_bench_model
from report import RESULTS_DIR, environment, percentile, set_runtime_defaults, write_results
from step_profile import print_profile, profile_engine
from systems import (
    CacheSizing,
    ContinuousBatchingSystem,
    GuardEngineSystem,
    PipelineSystem,
    Request,
    StaticBatchSystem,
    System,
    Timing,
    load_model,
)

POISSON = "poisson"


@dataclass(frozen=True, slots=True)
class Plan:
    concurrencies: tuple[int, ...] = (1, 4, 16, 32)
    prompt_tokens: int = 128
    new_tokens: int = 128
    rounds: int = 2
    """Requests each closed-loop client sends back to back ((a) sends one: it serves its clients in turn anyway)."""
    a_max_clients: int = 8
    """(a) serves one request at a time, so its tok/s is the same at any concurrency: beyond this many clients it
    runs only the first ones (the whole run stays under ~25 min); its latencies are then those of a shorter queue."""
    poisson_requests: int = 200
    poisson_prompt: tuple[int, int] = (16, 512)
    poisson_output: tuple[int, int] = (8, 256)
    capacity_burst: int = 32
    """(b)'s capacity is measured on this many of the Poisson requests, all waiting at once (one full batch)."""
    load: float = 0.8
    seed: int = 0


QUICK = Plan(
    concurrencies=(1, 4),
    prompt_tokens=32,
    new_tokens=16,
    rounds=1,
    poisson_requests=16,
    poisson_prompt=(16, 64),
    poisson_output=(8, 32),
    capacity_burst=8,
)


class PromptMaker:
    """Random prompts of exact lengths whose text re-encodes to the same ids, so (a), fed text, sees the same tokens."""

    def __init__(self, tokenizer: Any, seed: int) -> None:
        self._tokenizer = tokenizer
        self._rng = random.Random(seed)
        special = set(tokenizer.all_special_ids)
        self._pool = [i for i in range(len(tokenizer)) if i not in special]

    def request(self, prompt_tokens: int, new_tokens: int) -> Request:
        body = self._stable_ids(prompt_tokens - 1)
        text = self._tokenizer.decode(body)
        return Request(prompt=(self._tokenizer.bos_token_id, *body), text=text, max_new_tokens=new_tokens)

    def _stable_ids(self, n: int) -> list[int]:
        for _ in range(100):
            ids = self._random(n)
            for _ in range(8):  # re-encoding merges some neighbours: refill and retry until it is a fixed point
                again = self._tokenizer.encode(self._tokenizer.decode(ids), add_special_tokens=False)
                if again == ids:
                    return ids
                ids = (again + self._random(n))[:n]
        raise RuntimeError(f"no round-trip-stable prompt of {n} tokens")

    def _random(self, n: int) -> list[int]:
        return [self._rng.choice(self._pool) for _ in range(n)]


def summarize(timings: Sequence[Timing]) -> dict[str, float]:
    """Aggregate tok/s over the whole run; TTFT, per-token latency and end-to-end percentiles over requests."""
    wall = max(t.finished for t in timings) - min(t.submitted for t in timings)
    tokens = sum(t.tokens for t in timings)
    ttft = [t.first_token - t.submitted for t in timings]
    tpot = [(t.finished - t.first_token) / (t.tokens - 1) for t in timings if t.tokens > 1]
    e2e = [t.finished - t.submitted for t in timings]
    summary: dict[str, float] = {
        "requests": len(timings),
        "tokens": tokens,
        "wall_s": wall,
        "tok_s": tokens / wall,
        "req_s": len(timings) / wall,
    }
    for name, values in (("ttft", ttft), ("tpot", tpot), ("e2e", e2e)):
        summary[f"{name}_p50_s"] = percentile(values, 50)
        summary[f"{name}_p95_s"] = percentile(values, 95)
    return summary


async def closed_loop(system: System, clients: Sequence[Sequence[Request]]) -> list[Timing]:
    """Each client sends its requests one after another; all clients start together."""

    async def client(requests: Sequence[Request]) -> list[Timing]:
        return [await system.serve(request) for request in requests]

    per_client = await asyncio.gather(*(client(requests) for requests in clients))
    return [timing for timings in per_client for timing in timings]


async def open_loop(system: System, requests: Sequence[Request], arrivals: Sequence[float]) -> list[Timing]:
    """Each request is sent at its arrival time (seconds from now), whatever is still running."""
    start = time.perf_counter()

    async def arrive(request: Request, at: float) -> Timing:
        await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        return await system.serve(request)

    return list(await asyncio.gather(*(arrive(r, at) for r, at in zip(requests, arrivals, strict=True))))


async def warm_up(system: System, maker: PromptMaker) -> None:
    """First calls allocate and pick kernels: run one request, then a small concurrent batch, untimed."""
    await system.serve(maker.request(32, 4))
    await closed_loop(system, [[maker.request(16 + 16 * i, 8)] for i in range(4)])


def build_systems(
    keys: Sequence[str], model_dir: Path, tokenizer: Any, threads: int, plan: Plan, decode_threads: int | None = None
) -> tuple[list[System], dict[str, str]]:
    """The requested systems in order; a system that cannot be built is reported, not fatal."""
    vocab = len(tokenizer)
    local = {} if decode_threads is None else {"decode_threads": decode_threads}
    longest = max(plan.prompt_tokens + plan.new_tokens, plan.poisson_prompt[1] + plan.poisson_output[1])
    factories: dict[str, Callable[[], System]] = {
        "a": lambda: PipelineSystem(model_dir, vocab),
        "b": lambda: StaticBatchSystem(load_model(model_dir), vocab, tokenizer.pad_token_id),
        "c": lambda: ContinuousBatchingSystem(model_dir, vocab, CacheSizing.for_sequences(longest)),
        "d": lambda: GuardEngineSystem(model_dir, threads, **local),
        "d-int8": lambda: GuardEngineSystem(model_dir, threads, quantization="int8", **local),
        "d-fp32": lambda: GuardEngineSystem(model_dir, threads, dtype="float32", **local),
        "d-compiled": lambda: GuardEngineSystem(model_dir, threads, compile=True, **local),
        **llama_factories(model_dir, threads, longest),
    }
    systems: list[System] = []
    unavailable: dict[str, str] = {}
    for key in keys:
        try:
            systems.append(factories[key]())
        except Exception as exc:
            unavailable[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"system ({key}) unavailable: {unavailable[key]}")
    return systems, unavailable


async def run_closed(systems: list[System], maker: PromptMaker, plan: Plan, results: dict[str, Any]) -> None:
    for concurrency in plan.concurrencies:
        workload = f"closed c={concurrency}"
        rounds = [
            [maker.request(plan.prompt_tokens, plan.new_tokens) for _ in range(plan.rounds)] for _ in range(concurrency)
        ]
        for system in systems:
            # (a) serves its clients in turn, so one request per client already measures it.
            clients = [requests[:1] for requests in rounds[: plan.a_max_clients]] if system.key == "a" else rounds
            started = time.perf_counter()
            results.setdefault(workload, {})[system.key] = summarize(await closed_loop(system, clients))
            print(f"{workload:>14} {system.label:<28} {time.perf_counter() - started:6.1f} s")


async def step_profile(systems: list[System], maker: PromptMaker, plan: Plan) -> dict[str, Any] | None:
    """Where (d)'s decode step goes at batch 1 and the largest concurrency (step_profile.py), closed-loop prompts."""
    engine = next((s for s in systems if isinstance(s, GuardEngineSystem)), None)
    if engine is None:
        return None
    rows = sorted({1, max(plan.concurrencies)})
    return await profile_engine(engine.engine, lambda: maker.request(plan.prompt_tokens, 1).prompt, rows)


def poisson_requests(maker: PromptMaker, plan: Plan) -> tuple[list[Request], list[float]]:
    """Mixed lengths and unit-rate exponential arrival gaps (scaled by the rate once (b)'s capacity is known)."""
    rng = random.Random(plan.seed + 1)
    requests = [
        maker.request(rng.randint(*plan.poisson_prompt), rng.randint(*plan.poisson_output))
        for _ in range(plan.poisson_requests)
    ]
    arrivals = list(itertools.accumulate(rng.expovariate(1.0) for _ in requests))
    return requests, arrivals


async def run_poisson(systems: list[System], maker: PromptMaker, plan: Plan, results: dict[str, Any]) -> dict[str, Any]:
    """Measure (b)'s capacity on the mixed workload, then replay the same arrivals at ``load`` x that rate."""
    by_key = {s.key: s for s in systems}
    if "b" not in by_key:
        return {"skipped": "the Poisson rate is 0.8x (b)'s capacity: run with (b)"}
    requests, unit_arrivals = poisson_requests(maker, plan)
    burst = requests[: plan.capacity_burst]
    capacity = summarize(await closed_loop(by_key["b"], [[r] for r in burst]))
    rate = plan.load * capacity["req_s"]
    arrivals = [at / rate for at in unit_arrivals]
    print(f"{POISSON:>14} (b) capacity {capacity['req_s']:.2f} req/s, {capacity['tok_s']:.0f} tok/s; rate {rate:.2f}")
    for system in systems:
        if system.key == "a":
            continue  # one request at a time cannot keep up with this rate: its queue would only grow
        started = time.perf_counter()
        summary = summarize(await open_loop(system, requests, arrivals))
        results.setdefault(POISSON, {})[system.key] = summary
        print(f"{POISSON:>14} {system.label:<28} {time.perf_counter() - started:6.1f} s")
    return {"b_capacity": capacity, "rate_req_s": rate, "offered_s": arrivals[-1], "requests": len(requests)}


TARGETS: tuple[tuple[str, str, str, str, str, str, float], ...] = (
    # (name, workload, metric, numerator, denominator, comparison, threshold)
    ("c=16 tok/s: d >= 1.3x c", "closed c=16", "tok_s", "d", "c", ">=", 1.3),
    ("c=16 tok/s: d >= 0.9x b", "closed c=16", "tok_s", "d", "b", ">=", 0.9),
    ("c=32 tok/s: d >= 12x a", "closed c=32", "tok_s", "d", "a", ">=", 12.0),
    ("Poisson e2e p95: d <= 0.7x b", POISSON, "e2e_p95_s", "d", "b", "<=", 0.7),
    # "at equal or higher throughput": open-loop throughput is set by the arrivals, so equal means within 5%.
    ("Poisson tok/s: d >= 0.95x b", POISSON, "tok_s", "d", "b", ">=", 0.95),
)


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    checked = []
    for name, workload, metric, top, bottom, comparison, threshold in TARGETS:
        runs = results.get(workload, {})
        ratio = runs[top][metric] / runs[bottom][metric] if top in runs and bottom in runs else math.nan
        passed = ratio >= threshold if comparison == ">=" else ratio <= threshold
        status = "n/a" if math.isnan(ratio) else "PASS" if passed else "FAIL"
        checked.append({"target": name, "ratio": ratio, "threshold": threshold, "status": status})
    return checked


def print_tables(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    labels = {key: info["label"] for key, info in payload["systems"].items()}
    table = Table(
        title=f"Gemma-2-shaped {payload['model']['parameters'] / 1e6:.0f}M, bf16, "
        f"{payload['environment']['torch_threads']} threads"
    )
    for column in (
        "workload",
        "system",
        "req",
        "tokens",
        "wall s",
        "tok/s",
        "TTFT p50/p95 ms",
        "per-token p50/p95 ms",
        "e2e p50/p95 s",
    ):
        table.add_column(column, justify="left" if column in ("workload", "system") else "right")
    for workload, runs in payload["results"].items():
        for key, r in runs.items():
            table.add_row(
                workload,
                labels[key],
                str(r["requests"]),
                str(r["tokens"]),
                f"{r['wall_s']:.1f}",
                f"{r['tok_s']:.1f}",
                _pair(r, "ttft", 1000, 0),
                _pair(r, "tpot", 1000, 1),
                _pair(r, "e2e", 1, 2),
            )
        table.add_section()
    console.print(table)
    for note in payload["notes"]:
        console.print(f"- {note}", highlight=False)
    targets = Table(title="targets (ratios measured in this run)")
    for column in ("target", "ratio", "status"):
        targets.add_column(column)
    for t in payload["targets"]:
        style = {"PASS": "green", "FAIL": "red"}.get(t["status"], "yellow")
        ratio = "-" if math.isnan(t["ratio"]) else f"{t['ratio']:.2f}"
        targets.add_row(t["target"], ratio, f"[{style}]{t['status']}[/]")
    console.print(targets)


def _pair(run: dict[str, float], metric: str, scale: float, digits: int) -> str:
    return f"{run[f'{metric}_p50_s'] * scale:.{digits}f} / {run[f'{metric}_p95_s'] * scale:.{digits}f}"


def run_notes(payload: dict[str, Any], plan: Plan) -> list[str]:
    notes = [
        "ids beyond the tokenizer's vocabulary are masked in every system (vocab 256000, tokenizer "
        f"{payload['model']['tokenizer_vocab']})",
        f"closed loops: each client sends {plan.rounds} request(s) back to back; (a) one per client (served in turn), "
        f"and at most {plan.a_max_clients} clients: its tok/s does not depend on concurrency, but its latencies "
        "at higher concurrency are those of a queue that deep",
        "(a) is not run on Poisson arrivals: one request at a time cannot keep up with 0.8x (b)'s capacity",
        "(b) finishes every request when its batch finishes; per-token latency counts its own tokens only",
    ]
    for info in payload["systems"].values():
        notes.extend(info["notes"])
    notes.extend(f"({key}) not run: {reason}" for key, reason in payload["unavailable"].items())
    return notes


async def benchmark(args: argparse.Namespace, plan: Plan) -> dict[str, Any]:
    from transformers import AutoTokenizer

    model_dir = args.model_dir or ensure_bench_model()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    maker = PromptMaker(tokenizer, plan.seed)
    systems, unavailable = build_systems(
        args.systems.split(","), model_dir, tokenizer, args.threads, plan, args.decode_threads
    )
    for system in systems:
        await system.start()
        await warm_up(system, maker)
    results: dict[str, Any] = {}
    try:
        await run_closed(systems, maker, plan, results)
        poisson = await run_poisson(systems, maker, plan, results)
        profile = await step_profile(systems, maker, plan)
    finally:
        for system in systems:
            await system.stop()
    manifest = json.loads((model_dir / MANIFEST).read_text()) if (model_dir / MANIFEST).is_file() else {}
    return {
        "benchmark": "engine",
        "quick": args.quick,
        "model": {
            "dir": str(model_dir),
            "recipe": manifest.get("recipe"),
            "parameters": manifest.get("parameters"),
            "dtype": "bfloat16",
            "tokenizer_vocab": len(tokenizer),
        },
        "plan": asdict(plan),
        "systems": {s.key: {"label": s.label, "notes": list(s.notes), **getattr(s, "details", {})} for s in systems},
        "unavailable": unavailable,
        "results": results,
        "poisson": poisson,
        "targets": check_targets(results),
        "step_profile": profile,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: concurrency 1 and 4, 16 short Poisson")
    parser.add_argument(
        "--systems", default="a,b,c,d,d-int8,e,e-q8", help="which systems, comma-separated (default: %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads")
    parser.add_argument(
        "--decode-threads", type=int, default=None, help="GUARD_DECODE_THREADS for (d) (default: the engine's)"
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the bench model (built if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poisson-requests", type=int, default=None, help="default: 200 (16 with --quick)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes (default: %(default)s)")
    parser.add_argument(
        "--constrained",
        action="store_true",
        help="only guard's engine at 16 concurrent: half the requests under a JSON Schema vs all unconstrained",
    )
    return parser.parse_args()


def constrained_main(args: argparse.Namespace) -> None:
    from constrained import ConstrainedPlan, print_constrained, run_constrained
    from transformers import AutoTokenizer

    started = time.perf_counter()
    env = environment()
    model_dir = args.model_dir or ensure_bench_model()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    plan = ConstrainedPlan(rounds=2, repeats=2) if args.quick else ConstrainedPlan()
    payload = asyncio.run(run_constrained(model_dir, tokenizer, args.threads, plan))
    payload.update(benchmark="engine-constrained", quick=args.quick, threads=args.threads, model_dir=str(model_dir))
    payload["environment"] = {**env, "load_average_end": os.getloadavg()}
    payload["runtime_s"] = time.perf_counter() - started
    print_constrained(payload)
    path = write_results("engine-constrained", payload, args.out)
    print(f"results: {path}; {payload['runtime_s']:.0f} s in all")


def quiet_libraries() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("ContinuousBatchingLogger").setLevel(logging.ERROR)


def main() -> None:
    set_runtime_defaults()
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    quiet_libraries()
    if args.constrained:
        constrained_main(args)
        return
    plan = replace(QUICK if args.quick else Plan(), seed=args.seed)
    if args.poisson_requests:
        plan = replace(plan, poisson_requests=args.poisson_requests)
    started = time.perf_counter()
    env = environment()
    payload = asyncio.run(benchmark(args, plan))
    payload["environment"] = {**env, "load_average_end": os.getloadavg()}
    payload["notes"] = run_notes(payload, plan)
    payload["runtime_s"] = time.perf_counter() - started
    print_tables(payload)
    if payload.get("step_profile"):
        print_profile(payload["step_profile"], "(d) decode step profile")
    path = write_results("engine", payload, args.out)
    print(f"results: {path} (and {path.with_name('engine-latest.json')}); {payload['runtime_s']:.0f} s in all")


if __name__ == "__main__":
    main()
