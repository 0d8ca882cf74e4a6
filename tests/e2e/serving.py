"""Start the real `guard serve` process the way `make serve` does, and wait until it is ready."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

GUARD = str(Path(sys.executable).parent / "guard")


@dataclass(frozen=True)
class Server:
    base: str
    auth: dict[str, str]
    key: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    """The ``guard serve`` process, for tests that signal it themselves."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(guard_home: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    env.update(
        GUARD_PROFILE="dev",
        GUARD_HOME=str(guard_home),
        GUARD_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'guard.db'}",
        GUARD_POLICY_DIR=str(ROOT / "policies"),
    )
    env.update(extra)
    return env


def start_server(guard_home: Path, tmp_path: Path, log_name: str = "server.log", **extra: str) -> Server:
    """Migrate the database (idempotent) and start `guard serve` on a free port; return once it is ready. The
    caller owns the process (stop it, or `kill -9` it to test crash recovery)."""
    port = free_port()
    env = server_env(guard_home, tmp_path, PORT=str(port), **extra)
    subprocess.run([GUARD, "db", "upgrade"], env=env, check=True, capture_output=True)
    log_path = tmp_path / log_name
    with log_path.open("w") as log:  # the child keeps its own descriptor
        process = subprocess.Popen([GUARD, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("server exited:\n" + log_path.read_text())
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                key = (guard_home / "dev-api-key").read_text().strip()
                return Server(base, {"Authorization": f"Bearer {key}"}, key, log_path, process)
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    process.wait()
    pytest.fail("server did not become ready:\n" + log_path.read_text())


@contextlib.contextmanager
def running_server(guard_home: Path, tmp_path: Path, **extra: str) -> Iterator[Server]:
    """A migrated database and a ready server; on exit, a clean shutdown is asserted."""
    server = start_server(guard_home, tmp_path, **extra)
    process, log_path = server.process, server.log
    assert process is not None
    try:
        yield server
    finally:
        process.terminate()  # a no-op when the test already stopped it
        code = process.wait(timeout=60)
    log_text = log_path.read_text()
    # SIGTERM: uvicorn drains and shuts the app down cleanly; `guard serve` then exits 0.
    assert code == 0, log_text
    assert "Application shutdown complete" in log_text
    assert "Traceback" not in log_text, log_text
