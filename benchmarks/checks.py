"""The policy checks alone: per-stage latency for 100-word texts at concurrency 1 and 16, and throughput.

Each simulated request runs the input stage on a 100-word user message and the output stage on a 100-word answer
through the service's ``CheckStage`` with the shipped default policy and the dev models (presidio + spaCy
en_core_web_sm, the embedding classifier, the dev detoxify checkpoint): the same code, micro-batchers and threads
as the service, without generation or the audit commit. Targets (issue 4): input + output ≤ 60 ms p50 at
concurrency 1; at 16 concurrent requests ≥ 1.5x the texts/s of concurrency 1, with batches > 1.

    python benchmarks/checks.py [--requests 48] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from report import RESULTS_DIR, environment, percentile, set_runtime_defaults, write_results

REPO = Path(__file__).resolve().parent.parent
LATENCY_TARGET_MS = 60.0
THROUGHPUT_TARGET = 1.5
WORDS = 100


def texts(count: int, seed: int = 7) -> list[tuple[str, str]]:
    """(user message, answer) pairs of ~100 words each, with the PII a real conversation carries."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        pii = f"I am {fake.name()}, write to {fake.email()} or call {fake.phone_number()}."
        words = pii.split()
        while len(words) < WORDS:
            words += fake.sentence(nb_words=rng.randint(8, 16)).split()
        answer = fake.paragraph(nb_sentences=12).split()[:WORDS]
        pairs.append((" ".join(words[:WORDS]), " ".join(answer)))
    return pairs


def load_stage() -> tuple[Any, Any]:
    """The service's check stage (checks, micro-batchers, subject digests, check timeout) and the default policy."""
    from guard.audit import SubjectHasher
    from guard.models import load_check_models
    from guard.pipeline import CheckStage
    from guard.policy import PolicyRegistry
    from guard.settings import PolicySettings, Settings

    settings = Settings.from_env(profile="dev")
    settings = replace(settings, policy=PolicySettings(directory=REPO / "policies", default="default"))
    policy = PolicyRegistry.from_directory(settings.policy.directory, settings.policy.default).get(None)
    stage = CheckStage(
        load_check_models(settings), SubjectHasher(b"bench" * 8), check_timeout_s=settings.api.check_timeout_s
    )
    return stage, policy


async def one_request(stage: Any, policy: Any, user: str, answer: str) -> dict[str, float]:
    from guard.checks import RequestScope

    scope = RequestScope()
    started = time.perf_counter()
    await stage.run(policy, "input", [user], scope, roles=["user"])
    middle = time.perf_counter()
    await stage.run(policy, "output", [answer], scope)
    done = time.perf_counter()
    return {"input": (middle - started) * 1000, "output": (done - middle) * 1000, "total": (done - started) * 1000}


async def measure(stage: Any, policy: Any, pairs: list[tuple[str, str]], concurrency: int) -> dict[str, Any]:
    for batcher in stage.batchers.values():
        batcher.stats.reset()
    queue = list(pairs)
    samples: list[dict[str, float]] = []

    async def worker() -> None:
        while queue:
            user, answer = queue.pop()
            samples.append(await one_request(stage, policy, user, answer))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    result: dict[str, Any] = {"concurrency": concurrency, "requests": len(samples), "wall_s": wall}
    for part in ("input", "output", "total"):
        values = [s[part] for s in samples]
        result[f"{part}_p50_ms"] = percentile(values, 50)
        result[f"{part}_p95_ms"] = percentile(values, 95)
    result["texts_per_s"] = 2 * len(samples) / wall
    result["batches"] = {
        name: {
            "batches": b.stats.batches,
            "mean_items": b.stats.items / b.stats.batches if b.stats.batches else 0.0,
            "max_items": b.stats.max_items,
        }
        for name, b in stage.batchers.items()
    }
    return result


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    stage, policy = load_stage()
    pairs = texts(args.requests)
    await measure(stage, policy, pairs[:4], 1)  # warm-up: first calls load lazily and fill caches
    single = await measure(stage, policy, pairs, 1)
    many = await measure(stage, policy, pairs, args.concurrency)
    stage.close()
    speedup = many["texts_per_s"] / single["texts_per_s"]
    batched = max(b["max_items"] for b in many["batches"].values())
    return {
        "benchmark": "checks",
        "policy": "policies/default.yaml",
        "words_per_text": WORDS,
        "dtype": "float32 (spaCy, detoxify dev checkpoint, MiniLM)",
        "concurrency_1": single,
        f"concurrency_{args.concurrency}": many,
        "targets": {
            "latency_p50_ms": {
                "value": single["total_p50_ms"],
                "threshold": LATENCY_TARGET_MS,
                "status": "PASS" if single["total_p50_ms"] <= LATENCY_TARGET_MS else "FAIL",
            },
            "throughput_ratio": {
                "value": speedup,
                "threshold": THROUGHPUT_TARGET,
                "max_batch": batched,
                "status": "PASS" if speedup >= THROUGHPUT_TARGET and batched > 1 else "FAIL",
            },
        },
    }


def print_table(payload: dict[str, Any], concurrency: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"policy checks on {WORDS}-word texts (input + output stage per request)")
    for column in ("concurrency", "requests", "input p50/p95 ms", "output p50/p95 ms", "total p50/p95 ms", "texts/s"):
        table.add_column(column, justify="right")
    table.add_column("batches: mean / max items", justify="left")
    for key in ("concurrency_1", f"concurrency_{concurrency}"):
        r = payload[key]
        table.add_row(
            str(r["concurrency"]),
            str(r["requests"]),
            f"{r['input_p50_ms']:.1f} / {r['input_p95_ms']:.1f}",
            f"{r['output_p50_ms']:.1f} / {r['output_p95_ms']:.1f}",
            f"{r['total_p50_ms']:.1f} / {r['total_p95_ms']:.1f}",
            f"{r['texts_per_s']:.1f}",
            ", ".join(f"{n} {b['mean_items']:.1f}/{b['max_items']}" for n, b in r["batches"].items()),
        )
    console = Console()
    console.print(table)
    for name, target in payload["targets"].items():
        style = "green" if target["status"] == "PASS" else "red"
        console.print(f"{name}: {target['value']:.2f} (target {target['threshold']}) [{style}]{target['status']}[/]")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes (default: %(default)s)")
    return parser.parse_args()


def main() -> None:
    set_runtime_defaults()
    args = parse_args()
    started = time.perf_counter()
    payload = {"environment": environment(), **asyncio.run(run_all(args))}
    payload["runtime_s"] = time.perf_counter() - started
    print_table(payload, args.concurrency)
    path = write_results("checks", payload, args.out)
    print(f"results: {path} (and {path.with_name('checks-latest.json')}); {payload['runtime_s']:.0f} s in all")


if __name__ == "__main__":
    main()
