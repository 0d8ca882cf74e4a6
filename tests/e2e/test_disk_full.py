"""A full disk under SQLite (issue 21, must-show 3): fail closed, not ready, and back without a restart.

The real server keeps its SQLite audit database on a small file system of its own (a tmpfs mounted for the test;
root only). A few answers are acknowledged, then a ballast file fills the file system and clients keep sending chat,
streamed chat and scan requests: every request whose row cannot be committed gets 503 + Retry-After, /readyz turns
not ready and names the full disk. The ballast is deleted: /readyz turns ready again on its own (its probe commits
the admin event recording the outage) and requests get 200s, with the same process. At the end every answer a
client got has its row, `PRAGMA integrity_check` is ``ok`` and `guard audit verify` passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from itertools import cycle
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import GUARD, Server, server_env, start_server
from tests.services import require_service

pytestmark = [pytest.mark.e2e]

FS_SIZE = "8m"
"""Room for the migrated database and its WAL with a few hundred rows; the ballast takes the rest."""
CHAT = {"messages": [{"role": "user", "content": "Summarise the benefits of night trains."}], "max_tokens": 4}
REDACTED = {"messages": [{"role": "user", "content": "My email is jane.roe@example.com; what is a heat pump?"}]}
SCAN = {"text": "Call me at 212-555-0142 about the repair cafe."}


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of FS_SIZE at ``tmp_path/fs``, unmounted at the end whatever happened."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    if os.geteuid() != 0:
        require_service("a small file system", "mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        require_service("a small file system", f"mount -t tmpfs failed: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)  # something still held it open


def fill(folder: Path) -> Path:
    """Write a ballast file until the file system has no block left; returns its path."""
    ballast = folder / "ballast"
    with ballast.open("wb", buffering=0) as handle:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * chunk)
    with pytest.raises(OSError, match="No space left") as full:
        (folder / "probe").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return ballast


class Clients:
    """Chat, streamed chat and scan requests; what the clients were told, by decision id."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.acked: set[str] = set()  # answers with a decision id (chat, scan, a stream's opening)
        self.streams: set[str] = set()  # streams that reached [DONE]
        self.refusals: list[httpx.Response] = []  # the 503s
        self.kinds = cycle(("chat", "scan", "stream", "redacted"))

    async def one(self, client: httpx.AsyncClient) -> int:
        kind = next(self.kinds)
        if kind == "stream":
            async with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
                await response.aread()  # kept, so a refusal's JSON body can be read like the others'
            if response.status_code == 200 and "data: [DONE]" in response.text.splitlines():
                self.streams.add(response.headers["x-guard-decision-id"])
        else:
            path, body = ("/v1/scan", SCAN) if kind == "scan" else ("/v1/chat/completions", CHAT)
            response = await client.post(path, json=REDACTED if kind == "redacted" else body)
        if response.status_code == 200:
            self.acked.add(response.headers["x-guard-decision-id"])
        elif response.status_code == 503:
            self.refusals.append(response)
        else:
            pytest.fail(f"{kind}: {response.status_code} {response.text}")
        return response.status_code

    async def burst(self, rounds: int, width: int = 4) -> list[int]:
        async with httpx.AsyncClient(base_url=self.server.base, headers=self.server.auth, timeout=60) as client:
            statuses: list[int] = []
            for _ in range(rounds):
                statuses += await asyncio.gather(*(self.one(client) for _ in range(width)))
            return statuses


def readiness(server: Server) -> tuple[int, dict[str, str]]:
    response = httpx.get(f"{server.base}/readyz", timeout=30)
    return response.status_code, response.json()["checks"]


def wait_ready(server: Server, timeout_s: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        status, checks = readiness(server)
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, checks
            return checks
        time.sleep(0.5)


def test_a_full_disk_fails_closed_and_recovers_without_a_restart(
    guard_home: Path, tmp_path: Path, small_fs: Path
) -> None:
    database = small_fs / "guard.db"
    url = f"sqlite+aiosqlite:///{database}"
    server = start_server(guard_home, tmp_path, GUARD_DATABASE_URL=url)
    assert server.process is not None
    clients = Clients(server)
    try:
        assert set(asyncio.run(clients.burst(2))) == {200}
        assert readiness(server)[1]["audit"] == "ok"

        ballast = fill(small_fs)
        statuses: list[int] = []
        while len(clients.refusals) < 12:  # the WAL's last free bytes may take a few rows first
            statuses += asyncio.run(clients.burst(1))
            assert len(statuses) < 400, "the full file system never refused a commit"
        for response in clients.refusals:
            assert response.headers["retry-after"].isdigit()
            assert response.json()["error"]["code"] == "service_unavailable"
            assert response.json()["request_id"] == response.headers["x-request-id"]
        status, checks = readiness(server)
        assert status == 503
        assert checks["audit"].startswith("commits failing since"), checks
        assert "disk full" in checks["audit"], checks
        assert checks["database"] == "ok"  # the database still answers reads: only a commit shows a full disk
        assert statuses[-8:] == [503] * 8, statuses  # once full, nothing is answered
        time.sleep(2.5)  # past the readiness probe's cache: the probe's own commit fails too
        assert readiness(server)[0] == 503

        ballast.unlink()
        wait_ready(server)  # no request needed: the readiness probe's commit succeeds
        assert set(asyncio.run(clients.burst(3))) == {200}
        assert server.process.poll() is None  # the same process: no restart
    finally:
        server.process.terminate()
        code = server.process.wait(timeout=60)
    log = server.log.read_text()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert "failed: disk full" in log  # the writer names the cause for the operator

    with contextlib.closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = connection.execute("SELECT decision_id, kind, parent_id, outcome FROM audit_decisions").fetchall()
        events = connection.execute("SELECT action, subject FROM admin_events").fetchall()
    answering = {r[0] for r in rows if r[1] in ("request", "stream_open") and r[3] == "ok"}
    closed = {r[2] for r in rows if r[1] == "stream_close"}
    assert len(clients.acked) >= 20
    assert clients.acked - answering == set(), "an answer was acknowledged without its row"
    assert clients.streams - closed == set(), "a stream reached [DONE] without its closing row"
    assert ("audit_recovered", "disk full") in events

    verify = subprocess.run(
        [GUARD, "audit", "verify"],
        env=server_env(guard_home, tmp_path, GUARD_DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
