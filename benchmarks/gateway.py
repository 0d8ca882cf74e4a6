"""The server-level effect of batching: 16 chat requests through the real HTTP server, one after another, then the
same 16 at once. Target: the concurrent run takes at most 0.3x the sequential one.

The server runs the dev profile with ``GUARD_MODEL`` pointing at the ~160M bench model, SQLite audit database in
a temporary directory, every policy check on. Greedy decoding, so both runs generate the same tokens.

    python benchmarks/gateway.py [--max-tokens 64] [--requests 16]

``--remote`` measures what the gateway adds in front of a remote engine instead: a real ``transformers serve``
(the OpenAI-compatible upstream) on the same model, called directly (``/v1/completions`` with the chat-templated
prompt) and through guard with ``GUARD_ENGINE=remote`` (``/v1/chat/completions``, every check on), the same prompts
at concurrency 1 and 16. The added latency is guard's minus the direct call's, per prompt (p50/p95).

    python benchmarks/gateway.py --remote [--max-tokens 16] [--requests 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from model import ensure_bench_model, guard_home
from report import RESULTS_DIR, environment, percentile, set_runtime_defaults, write_results

REPO = Path(__file__).resolve().parent.parent
GUARD = Path(sys.executable).with_name("guard")
TARGET = 0.3
TRANSFORMERS = Path(sys.executable).with_name("transformers")
READY_TIMEOUT_S = 600
TOPICS = (
    "solar panels", "public libraries", "bicycle lanes", "rainwater tanks", "night trains", "community gardens",
    "heat pumps", "open data", "school meals", "tidal power", "museum passes", "repair cafes",
    "wind farms", "street trees", "car sharing", "noise barriers",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reply:
    seconds: float
    completion_tokens: int
    finish_reason: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(home: Path, database: Path, model_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GUARD_PROFILE": "dev",
        "GUARD_HOME": str(home),
        "GUARD_MODEL": str(model_dir),
        "GUARD_DTYPE": "bfloat16",
        "GUARD_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }


def guard_cli(args: Sequence[str], env: dict[str, str]) -> None:
    subprocess.run([str(GUARD), *args], check=True, env=env, cwd=REPO)


@contextlib.contextmanager
def running_server(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(GUARD), "serve", "--port", str(port)], env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            yield server
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()


async def wait_ready(client: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    """Poll /readyz until 200 (loading the models takes a while), failing fast if the server exits."""
    async with asyncio.timeout(READY_TIMEOUT_S):
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with status {server.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.5)


async def chat(client: httpx.AsyncClient, content: str, max_tokens: int) -> Reply:
    body = {
        "model": "default",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    started = time.perf_counter()
    response = await client.post("/v1/chat/completions", json=body)
    seconds = time.perf_counter() - started
    response.raise_for_status()
    data = response.json()
    return Reply(seconds, int(data["usage"]["completion_tokens"]), str(data["choices"][0]["finish_reason"]))


def summarize(replies: Sequence[Reply], wall: float) -> dict[str, Any]:
    latencies = [r.seconds for r in replies]
    tokens = sum(r.completion_tokens for r in replies)
    return {
        "wall_s": wall,
        "completion_tokens": tokens,
        "tok_s": tokens / wall,
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "finish_reasons": sorted({r.finish_reason for r in replies}),
        "replies": [asdict(r) for r in replies],
    }


async def measure(
    base_url: str, key_file: Path, server: subprocess.Popen[bytes], args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    prompts = [
        f"Request {i}: in a few sentences, explain the benefits of {TOPICS[i % len(TOPICS)]}."
        for i in range(args.requests)
    ]
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(900)) as client:
        await wait_ready(client, server)
        # The dev profile writes its key before it serves; an explicit GUARD_API_KEY wins.
        api_key = os.environ.get("GUARD_API_KEY") or (await asyncio.to_thread(key_file.read_text)).strip()
        client.headers["Authorization"] = f"Bearer {api_key}"
        # Warm-up: the first requests load kernels in the engine and the checks; not timed.
        await chat(client, "Warm-up: say hello.", args.max_tokens)
        await asyncio.gather(*(chat(client, f"Warm-up {i}.", 8) for i in range(4)))
        started = time.perf_counter()
        sequential = [await chat(client, prompt, args.max_tokens) for prompt in prompts]
        sequential_wall = time.perf_counter() - started
        started = time.perf_counter()
        concurrent = await asyncio.gather(*(chat(client, prompt, args.max_tokens) for prompt in prompts))
        concurrent_wall = time.perf_counter() - started
    return summarize(sequential, sequential_wall), summarize(concurrent, concurrent_wall)


def run(args: argparse.Namespace) -> dict[str, Any]:
    home = args.home or guard_home()
    with tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp:
        env = server_env(home, Path(tmp) / "bench.db", args.model_dir)
        guard_cli(["models", "build-dev"], env)
        guard_cli(["db", "upgrade"], env)
        port, log = free_port(), Path(tmp) / "server.log"
        with running_server(env, port, log) as server:
            try:
                sequential, concurrent = asyncio.run(
                    measure(f"http://127.0.0.1:{port}", home / "dev-api-key", server, args)
                )
            except Exception:
                print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
                raise
    ratio = concurrent["wall_s"] / sequential["wall_s"]
    return {
        "benchmark": "gateway",
        "model_dir": str(args.model_dir),
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "server": {
            "profile": "dev",
            "dtype": "bfloat16",
            "quantization": os.environ.get("GUARD_QUANTIZATION") or "none",
            "decode_threads": os.environ.get("GUARD_DECODE_THREADS") or "0",
            "compile": os.environ.get("GUARD_COMPILE") or "0",
            "threads": os.environ.get("GUARD_THREADS") or "all cores",
        },
        "sequential": sequential,
        "concurrent": concurrent,
        "same_tokens": sequential["completion_tokens"] == concurrent["completion_tokens"],
        "target": {"ratio": ratio, "threshold": TARGET, "status": "PASS" if ratio <= TARGET else "FAIL"},
    }


def print_table(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{payload['requests']} chat requests through HTTP, max_tokens {payload['max_tokens']}")
    for column in ("run", "wall s", "completion tokens", "tok/s", "latency p50/p95 s", "finish"):
        table.add_column(column, justify="left" if column in ("run", "finish") else "right")
    for name in ("sequential", "concurrent"):
        r = payload[name]
        table.add_row(
            name,
            f"{r['wall_s']:.1f}",
            str(r["completion_tokens"]),
            f"{r['tok_s']:.1f}",
            f"{r['latency_p50_s']:.2f} / {r['latency_p95_s']:.2f}",
            ",".join(r["finish_reasons"]),
        )
    console = Console()
    console.print(table)
    target = payload["target"]
    style = "green" if target["status"] == "PASS" else "red"
    console.print(
        f"concurrent / sequential wall time: {target['ratio']:.3f} (target <= {TARGET}) [{style}]{target['status']}[/]"
    )
    if not payload["same_tokens"]:
        console.print("[yellow]the two runs generated different token counts: compare tok/s too[/]")


@contextlib.contextmanager
def running_upstream(model_dir: Path, port: int, log: Path, dtype: str) -> Iterator[str]:
    """`transformers serve` force-loading ``model_dir`` on CPU; yields its base URL once /health answers."""
    command = [str(TRANSFORMERS), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with log.open("wb") as sink:
        upstream = subprocess.Popen([*command, "--dtype", dtype, str(model_dir)], stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while upstream.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError("transformers serve did not start:\n" + log.read_text(errors="replace")[-4000:])
        yield base
    finally:
        upstream.terminate()
        upstream.wait(timeout=60)


async def direct(client: httpx.AsyncClient, model: str, prompt: str, max_tokens: int) -> Reply:
    """The same request the remote engine makes, straight to the upstream (no checks, no audit)."""
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    started = time.perf_counter()
    response = await client.post("/v1/completions", json=body)
    seconds = time.perf_counter() - started
    response.raise_for_status()
    data = response.json()
    return Reply(seconds, int(data["usage"]["completion_tokens"]), str(data["choices"][0]["finish_reason"]))


async def _runs(call: Any, items: Sequence[Any], concurrency: int) -> list[Reply]:
    if concurrency == 1:
        return [await call(item) for item in items]
    limit = asyncio.Semaphore(concurrency)

    async def bounded(item: Any) -> Reply:
        async with limit:
            return await call(item)

    return list(await asyncio.gather(*(bounded(item) for item in items)))


def added_latency(guarded: Sequence[Reply], upstream: Sequence[Reply]) -> dict[str, Any]:
    """Per prompt, guard's latency minus the direct call's; p50/p95 of those and of both latencies (ms)."""
    added = [g.seconds - d.seconds for g, d in zip(guarded, upstream, strict=True)]
    return {
        "added_p50_ms": percentile(added, 50) * 1000,
        "added_p95_ms": percentile(added, 95) * 1000,
        "guard_p50_ms": percentile([r.seconds for r in guarded], 50) * 1000,
        "guard_p95_ms": percentile([r.seconds for r in guarded], 95) * 1000,
        "direct_p50_ms": percentile([r.seconds for r in upstream], 50) * 1000,
        "direct_p95_ms": percentile([r.seconds for r in upstream], 95) * 1000,
        "same_tokens": [r.completion_tokens for r in guarded] == [r.completion_tokens for r in upstream],
        "guard": [asdict(r) for r in guarded],
        "direct": [asdict(r) for r in upstream],
    }


async def measure_remote(
    guard_url: str, upstream_url: str, key_file: Path, server: subprocess.Popen[bytes], args: argparse.Namespace
) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    topics = [f"Request {i}: explain the benefits of {TOPICS[i % len(TOPICS)]}." for i in range(args.requests)]
    rendered = [
        str(tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True))
        for t in topics
    ]
    results: dict[str, Any] = {}
    timeout = httpx.Timeout(900)
    limits = httpx.Limits(max_connections=64)
    async with (
        httpx.AsyncClient(base_url=guard_url, timeout=timeout, limits=limits) as guard,
        httpx.AsyncClient(base_url=upstream_url, timeout=timeout, limits=limits) as upstream,
    ):
        await wait_ready(guard, server)
        api_key = os.environ.get("GUARD_API_KEY") or (await asyncio.to_thread(key_file.read_text)).strip()
        guard.headers["Authorization"] = f"Bearer {api_key}"
        model = str(args.model_dir)
        for _ in range(2):  # warm-up: kernels in the upstream, the checks in guard; not timed
            await chat(guard, "Warm-up: say hello.", args.max_tokens)
            await direct(upstream, model, rendered[0], args.max_tokens)
        for concurrency in (1, 16):
            upstream_replies = await _runs(lambda p: direct(upstream, model, p, args.max_tokens), rendered, concurrency)
            guarded = await _runs(lambda t: chat(guard, t, args.max_tokens), topics, concurrency)
            results[f"concurrency_{concurrency}"] = added_latency(guarded, upstream_replies)
    return results


def run_remote(args: argparse.Namespace) -> dict[str, Any]:
    home = args.home or guard_home()
    with tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp:
        env = server_env(home, Path(tmp) / "bench.db", args.model_dir)
        guard_cli(["models", "build-dev"], env)
        guard_cli(["db", "upgrade"], env)
        upstream_log, log = Path(tmp) / "upstream.log", Path(tmp) / "server.log"
        with running_upstream(args.model_dir, free_port(), upstream_log, args.upstream_dtype) as upstream_url:
            env |= {"GUARD_ENGINE": "remote", "GUARD_ENGINE_URL": upstream_url}
            port = free_port()
            with running_server(env, port, log) as server:
                try:
                    results = asyncio.run(
                        measure_remote(f"http://127.0.0.1:{port}", upstream_url, home / "dev-api-key", server, args)
                    )
                except Exception:
                    print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
                    raise
    return {
        "benchmark": "gateway-remote",
        "model_dir": str(args.model_dir),
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "upstream": {"server": "transformers serve", "device": "cpu", "dtype": args.upstream_dtype},
        "server": {"profile": "dev", "engine": "remote", "threads": os.environ.get("GUARD_THREADS") or "all cores"},
        **results,
    }


def print_remote_table(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"guard in front of transformers serve: {payload['requests']} chat requests, "
        f"max_tokens {payload['max_tokens']} (ms)"
    )
    for column in ("concurrency", "direct p50/p95", "guard p50/p95", "added p50/p95", "same tokens"):
        table.add_column(column, justify="right")
    for concurrency in (1, 16):
        r = payload[f"concurrency_{concurrency}"]
        table.add_row(
            str(concurrency),
            f"{r['direct_p50_ms']:.0f} / {r['direct_p95_ms']:.0f}",
            f"{r['guard_p50_ms']:.0f} / {r['guard_p95_ms']:.0f}",
            f"{r['added_p50_ms']:.0f} / {r['added_p95_ms']:.0f}",
            "yes" if r["same_tokens"] else "no",
        )
    Console().print(table)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the bench model (built if missing)")
    parser.add_argument("--home", type=Path, default=None, help="GUARD_HOME for the server (default: yours)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes (default: %(default)s)")
    parser.add_argument("--remote", action="store_true", help="guard's added latency in front of a remote engine")
    parser.add_argument(
        "--upstream-dtype", default="bfloat16", help="--remote: the upstream's dtype (default: %(default)s)"
    )
    return parser.parse_args()


def main() -> None:
    set_runtime_defaults()
    args = parse_args()
    args.model_dir = args.model_dir or ensure_bench_model()
    started = time.perf_counter()
    payload = {"environment": environment(), **(run_remote(args) if args.remote else run(args))}
    payload["runtime_s"] = time.perf_counter() - started
    (print_remote_table if args.remote else print_table)(payload)
    stem = "gateway-remote" if args.remote else "gateway"
    path = write_results(stem, payload, args.out)
    print(f"results: {path} (and {path.with_name(f'{stem}-latest.json')}); {payload['runtime_s']:.0f} s in all")


if __name__ == "__main__":
    main()
