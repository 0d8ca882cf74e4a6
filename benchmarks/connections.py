"""What connection abuse costs well-behaved clients (issue 21, must-show 2's latency half): 8 normal clients
(scan, short chat, short stream in turn) for a phase alone, then a phase beside 500 idle connections (reopened when
closed), 20 slow-header and 20 slow-body clients and 20 streaming clients that never read (run from a separate
process); their p95 latency loaded ÷ unloaded, per round and the median over rounds (goal ≤ 2), with guard's
default connection limits or the e2e test's tighter ones. The server is `guard serve` (dev profile, SQLite) on a
generator that never ends an answer by itself (the dev tokenizer on a tiny Gemma-2, as the e2e test builds it), so
the stalled streams run until the send timeout cuts them.

    python benchmarks/connections.py [--rounds 3] [--phase-s 15] [--limits default|tight]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from report import RESULTS_DIR, environment, percentile, set_runtime_defaults, write_results

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
GUARD = Path(sys.executable).with_name("guard")
TIGHT = {
    "GUARD_MAX_CONNECTIONS": "400",
    "GUARD_HEADER_TIMEOUT_S": "3",
    "GUARD_BODY_TIMEOUT_S": "3",
    "GUARD_SEND_TIMEOUT_S": "2",
    "GUARD_SEND_BUFFER_BYTES": "4096",
}
"""``--limits tight``: the e2e test's limits (fewer connections than the flood, so idle ones are closed to make room,
and every slow or stalled client cut within the phase)."""


def endless_model(home: Path, target: Path) -> Path:
    import torch
    from transformers import AutoTokenizer

    from tests.tiny_gemma import tiny_gemma2

    tokenizer = AutoTokenizer.from_pretrained(home / "dev-models" / "gemma-2")
    model = tiny_gemma2(tokenizer, seed=0, max_position_embeddings=8192)
    with torch.no_grad():
        model.model.embed_tokens.weight[tokenizer.all_special_ids] = 0.0  # never the greedy choice
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def start_server(home: Path, scratch: Path, limits: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, str]:
    from load import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    env.update(
        GUARD_PROFILE="dev",
        GUARD_HOME=str(home),
        GUARD_DATABASE_URL=f"sqlite+aiosqlite:///{scratch / 'guard.db'}",
        GUARD_POLICY_DIR=str(REPO / "policies"),
        GUARD_MODEL=str(endless_model(home, scratch / "gemma-2")),
        PORT=str(port),
        **limits,
    )
    subprocess.run([str(GUARD), "db", "upgrade"], env=env, check=True, capture_output=True)
    log = (scratch / "server.log").open("w")
    process = subprocess.Popen([str(GUARD), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("server exited:\n" + (scratch / "server.log").read_text())
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return process, base, (home / "dev-api-key").read_text().strip()
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    sys.exit("server did not become ready")


async def normal(
    base: str, key: str, stop: asyncio.Event, latencies: list[float], statuses: Counter[int], i: int
) -> None:
    chat = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "temperature": 0}
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        turn = i
        while not stop.is_set():
            turn += 1
            started = time.perf_counter()
            if turn % 3 == 0:
                status = (await client.post("/v1/scan", json={"text": f"Client {i} asks about Paris."})).status_code
            elif turn % 3 == 1:
                status = (await client.post("/v1/chat/completions", json=chat)).status_code
            else:
                async with client.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as answer:
                    async for _ in answer.aiter_bytes():
                        pass
                    status = answer.status_code
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1


def run_abuse(host: str, port: int, key: str, seconds: float) -> None:
    """The abuse for ``seconds``, in its own process: its 600 connections must not slow the measuring clients'
    event loop."""

    async def timed() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await abuse(host, port, key, stop)

    asyncio.run(timed())


async def abuse(host: str, port: int, key: str, stop: asyncio.Event) -> None:
    """500 idle, 20 slow-header, 20 slow-body and 20 never-reading stream clients until ``stop``."""
    import json
    import socket

    async def idle() -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            closed = asyncio.create_task(reader.read())
            await asyncio.wait([closed, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            writer.close()
            await asyncio.sleep(0.3)

    async def slow(head: bytes, drip: bytes) -> None:
        while not stop.is_set():
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(head)
            answer = asyncio.create_task(reader.read(65536))
            while not answer.done() and not stop.is_set():
                try:
                    writer.write(drip)
                    await writer.drain()
                except OSError:
                    break
                await asyncio.wait([answer], timeout=0.5)
            answer.cancel()
            writer.close()

    body = json.dumps(
        {"messages": [{"role": "user", "content": "Go on."}], "max_tokens": 500, "temperature": 0, "stream": True}
    ).encode()
    stream_request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def stalled() -> None:
        while not stop.is_set():
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            await asyncio.get_running_loop().sock_sendall(sock, stream_request)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=40)  # never read, until the server cuts it
            sock.close()

    slow_body = (
        f"POST /v1/scan HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        "Content-Length: 4000\r\n\r\n"
    ).encode()
    tasks = [asyncio.create_task(idle()) for _ in range(500)]
    tasks += [asyncio.create_task(slow(b"POST /v1/scan HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n")) for _ in range(20)]
    tasks += [asyncio.create_task(slow(slow_body, b" ")) for _ in range(20)]
    tasks += [asyncio.create_task(stalled()) for _ in range(20)]
    await asyncio.gather(*tasks)


async def phase(base: str, key: str, seconds: float, abused: bool) -> tuple[list[float], Counter[int]]:
    stop, latencies, statuses = asyncio.Event(), list[float](), Counter[int]()
    host, port = base.removeprefix("http://").split(":")
    abuser = None
    if abused:
        abuser = multiprocessing.Process(target=run_abuse, args=(host, int(port), key, seconds + 2.0))
        abuser.start()
        await asyncio.sleep(2.0)  # the flood and the stalled streams are in place first
    tasks = [asyncio.create_task(normal(base, key, stop, latencies, statuses, i)) for i in range(8)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    if abuser is not None:
        abuser.join(timeout=60)
    return latencies, statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phase-s", type=float, default=15.0)
    parser.add_argument(
        "--limits", choices=("default", "tight"), default="default", help="guard's defaults, or the e2e test's"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    limits = TIGHT if args.limits == "tight" else {}
    set_runtime_defaults()
    from guard.settings import Settings

    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="guard-connections-") as scratch:
        process, base, key = start_server(Settings.from_env(profile="dev").home, Path(scratch), limits)
        try:
            asyncio.run(phase(base, key, 3.0, abused=False))  # warm
            for _ in range(args.rounds):
                quiet, quiet_statuses = asyncio.run(phase(base, key, args.phase_s, abused=False))
                loaded, loaded_statuses = asyncio.run(phase(base, key, args.phase_s, abused=True))
                p95_quiet, p95_loaded = percentile(quiet, 95) * 1000, percentile(loaded, 95) * 1000
                rounds.append(
                    {
                        "unloaded": {"requests": len(quiet), "p95_ms": p95_quiet, "statuses": dict(quiet_statuses)},
                        "loaded": {"requests": len(loaded), "p95_ms": p95_loaded, "statuses": dict(loaded_statuses)},
                        "ratio": p95_loaded / p95_quiet,
                    }
                )
        finally:
            process.terminate()
            process.wait(timeout=60)

    print(f"\n{'round':<6} {'unloaded p95 ms':>16} {'loaded p95 ms':>14} {'ratio':>6}  loaded statuses")
    for i, row in enumerate(rounds, 1):
        print(
            f"{i:<6} {row['unloaded']['p95_ms']:>16.0f} {row['loaded']['p95_ms']:>14.0f} {row['ratio']:>6.2f}  "
            f"{row['loaded']['statuses']}"
        )
    ratio = statistics.median(row["ratio"] for row in rounds)
    only_200 = all(set(row["loaded"]["statuses"]) == {200} for row in rounds)
    print(f"\nmedian p95 loaded ÷ unloaded: {ratio:.2f} (goal ≤ 2); normal clients only 200s: {only_200}")
    payload = {
        "benchmark": "connections",
        "phase_s": args.phase_s,
        "limits": {"name": args.limits, **dataclasses.asdict(Settings.from_env(environ=limits).connections)},
        "abuse": {"idle": 500, "slow_header": 20, "slow_body": 20, "stalled_streams": 20},
        "normal_clients": 8,
        "server_threads": os.environ.get("GUARD_THREADS", "0 (one per available core)"),
        "environment": environment(),
        "rounds": rounds,
        "median_ratio": ratio,
        "only_200": only_200,
    }
    print(f"results: {write_results(f'connections-{args.limits}', payload, args.out)}")
    return 0 if only_200 and ratio <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
