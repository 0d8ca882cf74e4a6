"""Soak (issue 21, must-show 1): mixed traffic against the real server for a long run, watching for drift.

N clients send chat, streamed chat, scans, requests the default policy blocks or redacts, and audit reads (list and
single decision) for ``--minutes``. Every ``--sample-s`` seconds the server's RSS, open file descriptors and threads
are read from /proc/PID and the queue gauges from ``/metrics``; every request's latency is kept with its minute and
kind. At the end the decision ids the clients were given are compared with the audit rows (as benchmarks/load.py
does). Limits, all after the warm-up (``--warmup-minutes``), comparing the first window after it with the last
(``--window-minutes`` each, 5 by default):

- RSS: median of the last window ≤ (1 + ``--rss-growth``) x median of the first window (5 %)
- open fds: median of the last window ≤ median of the first window + ``--fd-slack`` (flat: 0 by default)
- latency: p95 of all requests in the last window ≤ ``--p95-ratio`` x p95 of the first window (1.2)
- 0 acknowledged answers without their row, 0 x 5xx, no dropped connection

Prints a per-minute table and the verdict, writes JSON (benchmarks/results/soak-*.json), exits 1 when a limit fails.
The server is started the way benchmarks/load.py starts it (dev profile, fresh SQLite database, WAL, synchronous=FULL).

    python benchmarks/soak.py [--minutes 30] [--clients 8] [--warmup-minutes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from load import BLOCKED, PLAIN, TOPICS, WITH_PII, Tally, audit_rows, compare, server_dtype, start_server
from report import RESULTS_DIR, environment, percentile, set_runtime_defaults, write_results

KINDS = {"chat": 3, "stream": 2, "scan": 3, "blocked": 1, "redacted": 2, "audit": 1}
"""Traffic kinds and their weights."""
_GAUGE = re.compile(r"^(guard_(?:check|engine|audit)_(?:queue_depth|running))(?:\{[^}]*\})? ([0-9.eE+-]+)$")


@dataclass(slots=True)
class Run:
    """What the clients saw (for the row comparison) and every request's (second, kind, latency, status)."""

    started: float = field(default_factory=time.monotonic)
    tally: Tally = field(default_factory=Tally)
    requests: list[tuple[float, str, float, int]] = field(default_factory=list)
    samples: list[dict[str, float]] = field(default_factory=list)
    recent_ids: list[str] = field(default_factory=list)  # for the audit reader


def _text(kind: str, rng: random.Random) -> str:
    group = {"blocked": BLOCKED, "redacted": WITH_PII}.get(kind, PLAIN)
    return rng.choice(group).format(topic=rng.choice(TOPICS), n=rng.randrange(10000))


async def one_request(client: httpx.AsyncClient, rng: random.Random, max_tokens: int, run: Run) -> None:
    kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
    started = time.monotonic()
    decision_id: str | None = None
    try:
        if kind == "audit":
            path = f"/v1/audit/{rng.choice(run.recent_ids)}" if run.recent_ids and rng.random() < 0.5 else None
            response = await client.get(path or "/v1/audit", params=None if path else {"limit": 20})
            status = response.status_code
        elif kind == "scan":
            response = await client.post("/v1/scan", json={"text": _text("scan", rng)})
            status, decision_id = response.status_code, response.headers.get("x-guard-decision-id")
        elif kind == "stream":
            body = {"messages": [{"role": "user", "content": _text(kind, rng)}], "max_tokens": max_tokens}
            async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as streamed:
                status, decision_id = streamed.status_code, streamed.headers.get("x-guard-decision-id")
                lines = [line async for line in streamed.aiter_lines()]
            if status == 200 and "data: [DONE]" not in lines:
                run.tally.errors["stream without [DONE]"] += 1
                status = 599  # an error event instead of the end: not acknowledged
            elif status == 200 and decision_id is not None:
                run.tally.streams.add(decision_id)
        else:  # chat, blocked, redacted: the policy answers, refuses (200 with a refusal) or redacts
            body = {"messages": [{"role": "user", "content": _text(kind, rng)}], "max_tokens": max_tokens}
            response = await client.post("/v1/chat/completions", json={**body, "temperature": 0})
            status, decision_id = response.status_code, response.headers.get("x-guard-decision-id")
    except httpx.HTTPError as exc:
        run.tally.errors[type(exc).__name__] += 1
        return
    seconds = time.monotonic() - started
    run.requests.append((started - run.started, kind, seconds, status))
    run.tally.statuses[(kind, status)] += 1
    if status >= 500:
        run.tally.server_errors.append(f"{kind} {status}")
    elif decision_id is not None and status == 200:
        run.tally.acked.add(decision_id)
        run.recent_ids.append(decision_id)  # a few recent ids for the audit reader
        del run.recent_ids[:-64]


def proc_sample(pid: int) -> dict[str, float]:
    """RSS (MB), threads and open descriptors of the server process, from /proc."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {
        "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
        "threads": int(status["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def queue_gauges(text: str) -> dict[str, float]:
    """The queue gauges of a Prometheus scrape, summed over their labels (e.g. every check's queue)."""
    totals: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if match := _GAUGE.match(line):
            totals[match.group(1)] += float(match.group(2))
    return dict(totals)


async def sampler(client: httpx.AsyncClient, pid: int, run: Run, every: float, deadline: float) -> None:
    while time.monotonic() < deadline:
        sample: dict[str, float] = {"t": time.monotonic() - run.started, **proc_sample(pid)}
        try:
            sample.update(queue_gauges((await client.get("/metrics", timeout=10)).text))
        except httpx.HTTPError:
            sample["metrics_failed"] = 1
        run.samples.append(sample)
        await asyncio.sleep(every)


async def drive(base: str, key: str, pid: int, args: argparse.Namespace) -> Run:
    run = Run()
    deadline = run.started + args.minutes * 60
    limits = httpx.Limits(max_connections=args.clients + 1, max_keepalive_connections=args.clients + 1)
    headers = {"Authorization": f"Bearer {key}"}

    async def client_loop(index: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(args.seed * 1000 + index)
        while time.monotonic() < deadline:
            await one_request(client, rng, args.max_tokens, run)
            await asyncio.sleep(args.pause_s)

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as client:
        await asyncio.gather(
            sampler(client, pid, run, args.sample_s, deadline), *(client_loop(i, client) for i in range(args.clients))
        )
    return run


def windows(minutes: float, warmup: float, window: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The first window after the warm-up and the last one, in seconds from the start; they may not overlap."""
    first = (warmup * 60, (warmup + window) * 60)
    last = (max(first[1], (minutes - window) * 60), minutes * 60)
    if last[1] - last[0] <= 0:
        raise ValueError(f"{minutes} minutes leave no window after {warmup} min warm-up + {window} min")
    return first, last


def _median_in(samples: list[dict[str, float]], key: str, span: tuple[float, float]) -> float:
    values = [s[key] for s in samples if span[0] <= s["t"] < span[1] and key in s]
    return statistics.median(values) if values else float("nan")


def _p95_in(requests: list[tuple[float, str, float, int]], span: tuple[float, float]) -> float:
    return percentile([seconds for t, _, seconds, _ in requests if span[0] <= t < span[1]], 95) * 1000


def verdict(run: Run, audit: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Each limit of must-show 1: its measured value, its bound and whether it holds."""
    first, last = windows(args.minutes, args.warmup_minutes, args.window_minutes)
    rss = (_median_in(run.samples, "rss_mb", first), _median_in(run.samples, "rss_mb", last))
    fds = (_median_in(run.samples, "fds", first), _median_in(run.samples, "fds", last))
    p95 = (_p95_in(run.requests, first), _p95_in(run.requests, last))
    checks = {
        "rss_growth": {"first_mb": rss[0], "last_mb": rss[1], "value": rss[1] / rss[0] - 1, "limit": args.rss_growth},
        "fd_growth": {"first": fds[0], "last": fds[1], "value": fds[1] - fds[0], "limit": args.fd_slack},
        "p95_ratio": {"first_ms": p95[0], "last_ms": p95[1], "value": p95[1] / p95[0], "limit": args.p95_ratio},
        "missing_rows": {"value": len(audit["missing"]), "limit": 0},
        "server_errors": {"value": len(run.tally.server_errors), "limit": 0},
        "transport_errors": {"value": sum(run.tally.errors.values()), "limit": 0},
    }
    for check in checks.values():
        check["ok"] = bool(check["value"] <= check["limit"])  # NaN (no samples) fails
    return {"windows_s": {"first": first, "last": last}, "checks": checks, "ok": all(c["ok"] for c in checks.values())}


def per_minute(run: Run) -> list[dict[str, Any]]:
    rows = []
    for minute in range(int(max([t for t, *_ in run.requests] + [0]) // 60) + 1):
        span = (minute * 60.0, minute * 60.0 + 60)
        done = [r for r in run.requests if span[0] <= r[0] < span[1]]
        samples = [s for s in run.samples if span[0] <= s["t"] < span[1]]
        kinds: dict[str, list[float]] = defaultdict(list)
        for _, kind, seconds, _ in done:
            kinds[kind].append(seconds)

        def peak(key: str, samples: list[dict[str, float]] = samples) -> float:
            return max((s.get(key, 0.0) for s in samples), default=float("nan"))

        rows.append(
            {
                "minute": minute,
                "requests": len(done),
                "5xx": sum(1 for r in done if r[3] >= 500),
                "p50_ms": percentile([r[2] for r in done], 50) * 1000,
                "p95_ms": percentile([r[2] for r in done], 95) * 1000,
                "p95_ms_by_kind": {k: percentile(v, 95) * 1000 for k, v in sorted(kinds.items())},
                "rss_mb": peak("rss_mb"),
                "fds": peak("fds"),
                "threads": peak("threads"),
                "audit_queue": peak("guard_audit_queue_depth"),
                "engine_queue": peak("guard_engine_queue_depth"),
                "check_queue": peak("guard_check_queue_depth"),
            }
        )
    return rows


def print_table(minutes: list[dict[str, Any]], result: dict[str, Any]) -> None:
    print(
        f"\n{'min':>4} {'reqs':>6} {'5xx':>4} {'p50 ms':>8} {'p95 ms':>8} {'RSS MB':>8} {'fds':>5} {'thr':>4} "
        f"{'auditQ':>6} {'engQ':>5} {'chkQ':>5}"
    )
    for row in minutes:
        print(
            f"{row['minute']:>4} {row['requests']:>6} {row['5xx']:>4} {row['p50_ms']:>8.0f} {row['p95_ms']:>8.0f} "
            f"{row['rss_mb']:>8.1f} {row['fds']:>5.0f} {row['threads']:>4.0f} {row['audit_queue']:>6.0f} "
            f"{row['engine_queue']:>5.0f} {row['check_queue']:>5.0f}"
        )
    first, last = result["verdict"]["windows_s"]["first"], result["verdict"]["windows_s"]["last"]
    print(f"\nwindows (min): first {first[0] / 60:.1f}-{first[1] / 60:.1f}, last {last[0] / 60:.1f}-{last[1] / 60:.1f}")
    for name, check in result["verdict"]["checks"].items():
        detail = ", ".join(f"{k} {v:.1f}" for k, v in check.items() if k not in ("value", "limit", "ok"))
        print(
            f"  {name:<17} {check['value']:>8.3f} (limit {check['limit']}){' ' + detail if detail else ''}  "
            f"{'ok' if check['ok'] else 'FAIL'}"
        )
    audit = result["audit"]
    print(
        f"requests {result['requests']}, acknowledged {audit['acknowledged']}, answering rows {audit['answering_rows']}"
        f", missing {audit['missing']}, statuses {result['statuses']}, transport errors {result['transport_errors']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup-minutes", type=float, help="default: 5, or a sixth of a run under 30 min")
    parser.add_argument("--window-minutes", type=float, help="default: 5, or a quarter of a run under 30 min")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pause-s", type=float, default=0.1, help="each client's pause between requests")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--rss-growth", type=float, default=0.05)
    parser.add_argument("--fd-slack", type=float, default=0.0)
    parser.add_argument("--p95-ratio", type=float, default=1.2)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    short = args.minutes < 30
    args.warmup_minutes = args.warmup_minutes if args.warmup_minutes is not None else args.minutes / 6 if short else 5
    args.window_minutes = args.window_minutes if args.window_minutes is not None else args.minutes / 4 if short else 5
    windows(args.minutes, args.warmup_minutes, args.window_minutes)  # refuse a run too short for its windows
    set_runtime_defaults()

    from guard.settings import Settings

    with tempfile.TemporaryDirectory(prefix="guard-soak-") as scratch:
        database = Path(scratch) / "guard.db"
        process, base, key, log = start_server(Settings.from_env(profile="dev").home, database)
        try:
            since = datetime.now(UTC)
            run = asyncio.run(drive(base, key, process.pid, args))
            audit = compare(run.tally, asyncio.run(audit_rows(f"sqlite+aiosqlite:///{database}", since)))
        finally:
            process.terminate()
            process.wait(timeout=60)
        traceback = "Traceback" in log.read_text()

    minutes = per_minute(run)
    result = {
        "requests": len(run.requests),
        "statuses": {f"{k} {s}": n for (k, s), n in sorted(run.tally.statuses.items())},
        "transport_errors": dict(run.tally.errors),
        "server_traceback": traceback,
        "audit": {k: (len(v) if isinstance(v, list) else v) for k, v in audit.items() if k != "extra"},
        "missing_ids": audit["missing"][:50],
        "verdict": verdict(run, audit, args),
        "minutes": minutes,
        "samples": run.samples,
    }
    print_table(minutes, result)
    payload = {
        "benchmark": "soak",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "kinds": KINDS,
        "server": "guard serve (dev profile, SQLite WAL, synchronous=FULL)",
        "dtype": server_dtype(),
        "server_threads": os.environ.get("GUARD_THREADS", "0 (one per available core)"),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "environment": environment(),
        "result": result,
    }
    path = write_results("soak", payload, args.out)
    print(f"results: {path}")
    ok = result["verdict"]["ok"] and not traceback
    print("PASS: every soak limit holds" if ok else "FAIL: a soak limit does not hold (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
