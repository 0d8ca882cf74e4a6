"""The server-level effect of batching: 16 chat requests through the real HTTP server, one after another, then the
same 16 at once. Target: the concurrent run takes at most 0.3x the sequential one.

The server runs the dev profile with ``GUARD_MODEL`` pointing at the ~160M bench model, SQLite audit database in
a temporary directory, every policy check on. Greedy decoding, so both runs generate the same tokens.

    python benchmarks/gateway.py [--max-tokens 64] [--requests 16]
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
        "server": {"profile": "dev", "dtype": "bfloat16", "threads": os.environ.get("GUARD_THREADS") or "all cores"},
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the bench model (built if missing)")
    parser.add_argument("--home", type=Path, default=None, help="GUARD_HOME for the server (default: yours)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes (default: %(default)s)")
    return parser.parse_args()


def main() -> None:
    set_runtime_defaults()
    args = parse_args()
    args.model_dir = args.model_dir or ensure_bench_model()
    started = time.perf_counter()
    payload = {"environment": environment(), **run(args)}
    payload["runtime_s"] = time.perf_counter() - started
    print_table(payload)
    path = write_results("gateway", payload, args.out)
    print(f"results: {path} (and {path.with_name('gateway-latest.json')}); {payload['runtime_s']:.0f} s in all")


if __name__ == "__main__":
    main()
