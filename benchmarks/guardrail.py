"""What guard adds to a LiteLLM call as its generic guardrail: the latency of ``POST /beta/litellm_basic_guardrail_api``
beside ``POST /v1/scan`` on the same texts, at concurrency 1 and 16 (p50/p95), through the real HTTP server.

A LiteLLM proxy with guard in ``pre_call`` and ``post_call`` mode makes two such calls per request (its request's
texts before the upstream call, the answer's after), each a blocking round trip: that is what guard adds to the
call. The bodies are what LiteLLM 1.108.7 sends (a system and a user message with their ``structured_messages``;
the answer as one text); ``/v1/scan`` gets the user message (input) and the answer (output), so the difference is
the protocol's cost (two texts instead of one, roles, the holdback, the mapping). The server runs the dev profile
(dev models, every check of the default policy on, SQLite audit database in a temporary directory).

    python benchmarks/guardrail.py [--requests 64] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from model import guard_home
from report import RESULTS_DIR, environment, percentile, set_runtime_defaults, write_results

REPO = Path(__file__).resolve().parent.parent
GUARD = Path(sys.executable).with_name("guard")
SYSTEM = "You are the support assistant of a city library. Answer briefly."
QUESTIONS = (
    "When does the central library open on Sundays?",
    "Can I renew a book online if it is already overdue?",
    "Send the reading list to maria.jones@example.org, please.",
    "Do you lend board games or only books?",
    "How many e-books can I borrow at the same time?",
    "My card number stopped working; who do I call?",
    "Is there a quiet room for studying on the second floor?",
    "Call me back on 212-555-0147 about the lost umbrella.",
)
ANSWERS = (
    "The central library opens at noon on Sundays and closes at five.",
    "Yes, you can renew it online once, and the late fee stays as it is.",
    "I have noted the address; the reading list goes out on Monday.",
    "We lend board games at the family desk for two weeks.",
)
ROUTES = ("guardrail", "scan")


def litellm_body(index: int, stage: str) -> dict[str, Any]:
    question = QUESTIONS[index % len(QUESTIONS)]
    common = {"litellm_call_id": str(uuid.uuid4()), "request_data": {"user_api_key_alias": "bench"}, "model": "gemma"}
    if stage == "input":
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        return {"input_type": "request", "texts": [SYSTEM, question], "structured_messages": messages, **common}
    return {"input_type": "response", "texts": [ANSWERS[index % len(ANSWERS)]], **common}


def scan_body(index: int, stage: str) -> dict[str, Any]:
    text = QUESTIONS[index % len(QUESTIONS)] if stage == "input" else ANSWERS[index % len(ANSWERS)]
    return {"text": text, "stage": stage}


async def timed(call: Callable[[], Awaitable[httpx.Response]]) -> float:
    started = time.perf_counter()
    response = await call()
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def run_route(client: httpx.AsyncClient, route: str, stage: str, requests: int, concurrency: int) -> list[float]:
    limit = asyncio.Semaphore(concurrency)
    path, body = (
        ("/beta/litellm_basic_guardrail_api", litellm_body) if route == "guardrail" else ("/v1/scan", scan_body)
    )

    async def one(index: int) -> float:
        async with limit:
            return await timed(lambda: client.post(path, json=body(index, stage)))

    return list(await asyncio.gather(*(one(i) for i in range(requests))))


def summary(latencies: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95), "n": len(latencies)}


async def measure(base: str, key: str, requests: int, rounds: int, server: subprocess.Popen[bytes]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:
        deadline = time.monotonic() + 600
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with status {server.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready")
            await asyncio.sleep(0.5)
        for stage in ("input", "output"):  # warm every check's batcher on both routes
            for route in ROUTES:
                await run_route(client, route, stage, 8, 4)
        results: dict[str, Any] = {}
        for concurrency in (1, 16):
            for stage in ("input", "output"):
                samples: dict[str, list[float]] = {route: [] for route in ROUTES}
                for _ in range(rounds):  # interleaved, so drift on a shared machine hits both routes alike
                    for route in ROUTES:
                        samples[route] += await run_route(client, route, stage, requests, concurrency)
                entry = {route: summary(values) for route, values in samples.items()}
                entry["p50_ratio"] = entry["guardrail"]["p50_ms"] / entry["scan"]["p50_ms"]
                results[f"concurrency_{concurrency}/{stage}"] = entry
        return results


@contextlib.contextmanager
def server(home: Path, workdir: Path, port: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    key = "bench-" + uuid.uuid4().hex
    env = {
        **os.environ,
        "GUARD_PROFILE": "dev",
        "GUARD_HOME": str(home),
        "GUARD_API_KEY": key,
        "GUARD_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'guard.db'}",
        "GUARD_POLICY_DIR": str(REPO / "policies"),
    }
    subprocess.run([str(GUARD), "models", "build-dev"], check=True, env=env, cwd=REPO)
    subprocess.run([str(GUARD), "db", "upgrade"], check=True, env=env, cwd=REPO, capture_output=True)
    with (workdir / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [str(GUARD), "serve", "--port", str(port)], env=env, cwd=REPO, stdout=log, stderr=log
        )
        try:
            yield process, key
        finally:
            process.terminate()
            process.wait(timeout=60)


def print_table(payload: dict[str, Any]) -> None:
    print("guard as LiteLLM's generic guardrail: latency of one guardrail call beside /v1/scan (same texts)")
    print(f"{'concurrency/stage':<22}{'guardrail p50':>14}{'p95':>9}{'scan p50':>11}{'p95':>9}{'p50 ratio':>11}")
    for name, entry in payload["results"].items():
        g, s = entry["guardrail"], entry["scan"]
        print(
            f"{name:<22}{g['p50_ms']:>11.1f} ms{g['p95_ms']:>6.1f} ms{s['p50_ms']:>8.1f} ms{s['p95_ms']:>6.1f} ms"
            f"{entry['p50_ratio']:>10.2f}x"
        )


def main() -> None:
    set_runtime_defaults()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=64, help="requests per route, stage and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        with server(guard_home(), Path(tmp), port) as (process, key):
            results = asyncio.run(measure(f"http://127.0.0.1:{port}", key, args.requests, args.rounds, process))
    payload = {
        "environment": environment(),
        "requests": args.requests,
        "rounds": args.rounds,
        "results": results,
        "runtime_s": time.perf_counter() - started,
    }
    print_table(payload)
    path = write_results("guardrail", payload, args.out)
    print(f"results: {path}; {payload['runtime_s']:.0f} s in all")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    main()
