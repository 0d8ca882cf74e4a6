"""Where one decode step of guard's engine goes: decoder body, vocabulary projection, head, bookkeeping.

The engine runs as it serves (its own worker thread, continuous batching); timers wrap the batcher's own phases,
so the same profile runs on older engine code (the "before" of a change: run this file with ``PYTHONPATH``
pointing at that checkout). ``rows`` requests arrive together, all are prefilled in the first step, and only the
steps after it with every row decoding count (medians over those steps):

- body: the decoder forward for the running rows (token/position tensors, masks, the layers, the slot cache);
- projection: the model's ``lm_head`` on every row, all 256,000 vocabulary rows (always computed, as in
  every benchmarked system);
- head: everything between the projection and recording tokens (softcap, masking ids beyond the tokenizer,
  float conversion, argmax or sampling, logprobs);
- bookkeeping: recording tokens, detokenizing, emitting deltas, dropping cancelled rows.

Effective bandwidth is the weights each phase must read once per step (decoder parameters without the
embedding; the tied embedding matrix for the projection) divided by its median time.

    python benchmarks/step_profile.py [--rows 1,32] [--steps 64] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PHASES = ("body", "projection", "head", "bookkeeping")


class _StepTimer:
    """Wraps the batcher's phases with timers (instance attributes shadow the methods) and records each step."""

    def __init__(self, batcher: Any, model: Any) -> None:
        self.steps: list[dict[str, float]] = []
        self.wrapped: list[tuple[Any, str, Any]] = []
        self._current: dict[str, float] = {}
        self._batcher = batcher
        self._wrap(batcher, "_decode_hidden", "body")
        if hasattr(batcher, "_project"):  # the batcher's own projection (compiled with GUARD_COMPILE)
            self._wrap(batcher, "_project", "projection")
        else:  # engine code before it
            self._wrap(model.lm_head, "forward", "projection")
        for name in ("_accept", "_drop_cancelled"):
            self._wrap(batcher, name, "bookkeeping")
        self._wrap(batcher, "_admit", "admit")
        step = batcher._step

        def timed_step() -> None:
            self._current = {"rows": float(len(batcher._running))}
            started = time.perf_counter()
            step()
            self._current["total"] = time.perf_counter() - started
            self.steps.append(self._current)

        self.wrapped.append((batcher, "_step", None))
        batcher._step = timed_step

    def remove(self) -> None:
        """Put back what was there before (the methods, or a compiled forward set on the instance)."""
        for owner, name, previous in reversed(self.wrapped):
            if previous is None:
                vars(owner).pop(name, None)
            else:
                setattr(owner, name, previous)

    def _wrap(self, owner: Any, name: str, phase: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)
        self.wrapped.append((owner, name, vars(owner).get(name)))  # an instance attribute (a compiled forward) or None

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._current[phase] = self._current.get(phase, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)

    def steady(self, rows: int) -> list[dict[str, float]]:
        """Steps that decoded ``rows`` rows and admitted nobody (their admission check alone is bookkeeping)."""
        found = []
        for recorded in self.steps:
            if recorded["rows"] != rows or "body" not in recorded:
                continue
            step = dict(recorded)
            step["bookkeeping"] = step.get("bookkeeping", 0.0) + step.pop("admit", 0.0)
            step["head"] = step["total"] - step["body"] - step.get("projection", 0.0) - step["bookkeeping"]
            found.append(step)
        return found


def weight_bytes(model: Any) -> dict[str, int]:
    """Bytes each phase reads once per step: the decoder without its embedding, and the projection matrix."""
    decoder = model.get_decoder()
    embedding = decoder.get_input_embeddings().weight
    return {"body": _module_bytes(decoder, embedding), "projection": _module_bytes(model.lm_head)}


def _module_bytes(module: Any, skip: Any = None) -> int:
    """Parameter bytes of ``module`` (without ``skip``), int8 layers' packed weights included (``weight_bytes``)."""
    total = 0
    for part in module.modules():
        total += int(getattr(part, "weight_bytes", 0))
        total += sum(p.numel() * p.element_size() for p in part.parameters(recurse=False) if p is not skip)
    return total


async def _profile_rows(engine: Any, prompts: Sequence[Sequence[int]], steps: int) -> None:
    from guard.engine.base import SamplingParams

    params = SamplingParams(max_tokens=steps + 1, temperature=0.0, ignore_eos=True)

    async def one(prompt: Sequence[int]) -> None:
        async for _ in engine.stream(list(prompt), params):
            pass

    await asyncio.gather(*(one(p) for p in prompts))


async def profile_engine(
    engine: Any, prompt: Callable[[], Sequence[int]], rows: Sequence[int] = (1, 32), steps: int = 64
) -> dict[str, Any]:
    """Profile a started :class:`~guard.engine.gemma.GemmaEngine` at each batch size in ``rows``."""
    batcher, model = engine._batcher, engine._model
    timer = _StepTimer(batcher, model)
    sizes = weight_bytes(model)
    found: dict[str, Any] = {"weight_bytes": sizes, "steps_per_batch": steps, "by_rows": {}}
    try:
        for count in rows:
            timer.steps.clear()
            await _profile_rows(engine, [prompt() for _ in range(count)], steps)
            steady = timer.steady(count)
            medians = {name: statistics.median(s.get(name, 0.0) for s in steady) for name in (*PHASES, "total")}
            found["by_rows"][str(count)] = {
                "steps": len(steady),
                "median_s": medians,
                "share": {name: medians[name] / medians["total"] for name in PHASES},
                "gb_s": {name: sizes[name] / medians[name] / 1e9 for name in sizes if medians[name] > 0},
                "tok_s": count / medians["total"],
            }
    finally:
        timer.remove()
    return found


def print_profile(profile: dict[str, Any], title: str = "decode step profile") -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console() if Console().is_terminal else Console(width=160)
    table = Table(title=f"{title} (medians over {profile['steps_per_batch']} steps; ms, share, GB/s of weights)")
    for column in ("rows", *PHASES, "step ms", "tok/s"):
        table.add_column(column, justify="right")
    for rows, r in profile["by_rows"].items():
        cells = []
        for name in PHASES:
            cell = f"{r['median_s'][name] * 1000:.1f} ({r['share'][name]:.0%})"
            if name in r["gb_s"]:
                cell += f" {r['gb_s'][name]:.1f} GB/s"
            cells.append(cell)
        table.add_row(rows, *cells, f"{r['median_s']['total'] * 1000:.1f}", f"{r['tok_s']:.1f}")
    console.print(table)


def main() -> None:
    from model import ensure_bench_model
    from report import RESULTS_DIR, environment, set_runtime_defaults, write_results

    set_runtime_defaults()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1,32", help="batch sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=64, help="decode steps per batch size (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--compile", action="store_true", help="GUARD_COMPILE=1 (torch.compile the decode step)")
    parser.add_argument("--quantization", default=None, help="GUARD_QUANTIZATION (e.g. int8; default: the engine's)")
    parser.add_argument("--decode-threads", type=int, default=None, help="GUARD_DECODE_THREADS (default: the engine's)")
    parser.add_argument("--label", default="", help="a name for this code version (goes into the JSON)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    payload = asyncio.run(_main(ensure_bench_model(), args))
    payload["environment"] = environment()
    print_profile(payload["profile"], f"decode step profile {args.label}".strip())
    path = write_results("engine-step-profile", payload, args.out)
    print(f"results: {path}")


async def _main(model_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from engine import PromptMaker
    from systems import GuardEngineSystem
    from transformers import AutoTokenizer

    import guard

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    maker = PromptMaker(tokenizer, seed=0)
    local: dict[str, Any] = {"compile": True} if args.compile else {}
    if args.quantization:
        local["quantization"] = args.quantization
    if args.decode_threads is not None:
        local["decode_threads"] = args.decode_threads
    system = GuardEngineSystem(model_dir, args.threads, **local)
    await system.start()
    try:
        rows = [int(r) for r in args.rows.split(",")]
        profile = await profile_engine(system.engine, lambda: maker.request(128, 1).prompt, rows, args.steps)
    finally:
        await system.stop()
    return {
        "benchmark": "engine-step-profile",
        "label": args.label,
        "guard": str(Path(guard.__file__).parent),
        "settings": system.settings_summary(),
        "dtype": "bfloat16",
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "profile": profile,
    }


if __name__ == "__main__":
    main()
