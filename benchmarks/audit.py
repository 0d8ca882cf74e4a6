"""The audit writer alone: committed rows/s with group commit while every caller waits for its own row's commit.

N concurrent callers each write R rows one after another, awaiting each commit (as a request does before it may
answer), into a fresh SQLite file in WAL mode with ``synchronous=FULL`` (a full fsync per commit); with
``GUARD_TEST_POSTGRES_URL`` set, the same against that PostgreSQL database (its audit table is emptied first).
Rows look like a real decision (redacted texts, findings, scores, latencies). Target (issue 7): ≥ 2,000 rows/s on
SQLite. Afterwards the chain is verified.

    python benchmarks/audit.py [--callers 64] [--rows 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report import RESULTS_DIR, environment, percentile, set_runtime_defaults, write_results

ROWS_PER_S_TARGET = 2000.0


def record(caller: int, n: int) -> Any:
    from guard.audit import AuditRecord

    return AuditRecord(
        decision_id=str(uuid.uuid4()),
        created_at=datetime.now(UTC),
        route="/v1/chat/completions",
        outcome="ok",
        http_status=200,
        decision="redact",
        key_id=f"key{caller % 4}",
        policy_name="default",
        policy_version="1",
        policy_sha256="ab" * 32,
        findings=[
            {
                "check": "pii",
                "type": "EMAIL_ADDRESS",
                "score": 1.0,
                "threshold": 0.5,
                "action": "redact",
                "start": 24,
                "end": 44,
                "stage": "input",
                "message_index": 0,
            }
        ],
        scores=[{"stage": "input", "check": "toxicity", "message_index": 0, "scores": {"toxicity": 0.0012}}],
        input_redacted=[{"role": "user", "content": f"Please write to <EMAIL_ADDRESS> about order {n}. " * 8}],
        output_redacted="Sure, here is a draft of the message. " * 6,
        latency_ms={"total": 81.2, "input": 30.1, "generate": 40.3, "output": 10.8},
        subject_hmacs=["cd" * 32],
    )


async def run(url: str, callers: int, rows: int) -> dict[str, Any]:
    from guard.audit import AuditWriter, create_engine
    from guard.audit.verify import verify_audit

    engine = create_engine(url)
    writer = AuditWriter(engine)
    waits: list[float] = []

    async def caller(index: int) -> None:
        for n in range(rows):
            started = time.perf_counter()
            await writer.write(record(index, n))
            waits.append((time.perf_counter() - started) * 1000)

    await writer.write(record(0, -1))  # warm up: connection, head read
    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    elapsed = time.perf_counter() - started
    stats = writer.stats
    await writer.aclose()
    report = await verify_audit(engine)
    await engine.dispose()
    total = callers * rows
    return {
        "callers": callers,
        "rows_per_caller": rows,
        "rows": total,
        "seconds": elapsed,
        "rows_per_s": total / elapsed,
        "batches": stats.batches - 1,
        "batch_mean": (stats.rows - 1) / max(stats.batches - 1, 1),
        "batch_max": stats.largest,
        "wait_ms_p50": percentile(waits, 50),
        "wait_ms_p95": percentile(waits, 95),
        "wait_ms_max": max(waits),
        "chain_verified": report.ok,
    }


async def reset_postgres(url: str) -> None:
    from sqlalchemy import text

    from guard.audit import create_engine
    from guard.audit.migrate import upgrade

    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM audit_decisions"))
    await engine.dispose()


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    from guard.audit.migrate import upgrade

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'audit.db'}"
        await asyncio.to_thread(upgrade, url)
        results["sqlite_wal_full"] = await run(url, args.callers, args.rows)
    postgres = os.environ.get("GUARD_TEST_POSTGRES_URL")
    if postgres:
        await reset_postgres(postgres)
        results["postgresql"] = await run(postgres, args.callers, args.rows)
    value = results["sqlite_wal_full"]["rows_per_s"]
    target = {
        "value": value,
        "threshold": f">= {ROWS_PER_S_TARGET:.0f} rows/s",
        "status": "pass" if value >= ROWS_PER_S_TARGET else "FAIL",
    }
    return {"results": results, "targets": {"sqlite_rows_per_s": target}}


def print_table(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    table = Table(title="audit writer: group commit, each caller awaiting its own row")
    for column in (
        "database",
        "callers x rows",
        "rows/s",
        "batches",
        "batch mean",
        "batch max",
        "wait p50 ms",
        "wait p95 ms",
        "verified",
    ):
        table.add_column(column, justify="right")
    for name, r in payload["results"].items():
        table.add_row(
            name,
            f"{r['callers']} x {r['rows_per_caller']}",
            f"{r['rows_per_s']:.0f}",
            str(r["batches"]),
            f"{r['batch_mean']:.1f}",
            str(r["batch_max"]),
            f"{r['wait_ms_p50']:.1f}",
            f"{r['wait_ms_p95']:.1f}",
            "yes" if r["chain_verified"] else "NO",
        )
    console.print(table)
    for name, target in payload["targets"].items():
        style = "green" if target["status"] == "pass" else "red"
        console.print(f"{name}: {target['value']:.0f} (target {target['threshold']}) [{style}]{target['status']}[/]")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes (default: %(default)s)")
    return parser.parse_args()


def main() -> None:
    set_runtime_defaults()
    args = parse_args()
    payload = {"environment": environment(), **asyncio.run(run_all(args))}
    print_table(payload)
    path = write_results("audit", payload, args.out)
    print(f"results: {path} (and {path.with_name('audit-latest.json')})")


if __name__ == "__main__":
    main()
