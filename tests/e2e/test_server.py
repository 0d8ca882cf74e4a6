"""The real server process over HTTP, started the way `make serve` starts it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from guard.devscript import scripted
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

GUARD = str(Path(sys.executable).parent / "guard")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(guard_home: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    env.update(
        GUARD_PROFILE="dev",
        GUARD_HOME=str(guard_home),
        GUARD_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'guard.db'}",
        GUARD_POLICY_DIR=str(ROOT / "policies"),
    )
    env.update(extra)
    return env


@pytest.fixture
def server(guard_home: Path, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
    env = _env(guard_home, tmp_path, PORT=str(port))
    subprocess.run([GUARD, "db", "upgrade"], env=env, check=True, capture_output=True)
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen([GUARD, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("server did not become ready:\n" + (tmp_path / "server.log").read_text())
        key = (guard_home / "dev-api-key").read_text().strip()
        yield base, {"Authorization": f"Bearer {key}"}
    finally:
        process.terminate()
        code = process.wait(timeout=60)
        log.close()
    log_text = (tmp_path / "server.log").read_text()
    # uvicorn shuts the app down cleanly, then re-raises SIGTERM so the exit status reports the signal.
    assert code in (0, -15), log_text
    assert "Application shutdown complete" in log_text
    assert "DEV MODELS IN USE" in log_text


def test_dev_server_is_ready_and_answers(server: tuple[str, dict[str, str]]) -> None:
    base, auth = server
    ready = httpx.get(f"{base}/readyz").json()
    assert ready["status"] == "ready"
    assert ready["profile"] == "dev"
    assert len(ready["dev_models"]) == 3
    dialogue = scripted("plain")
    response = httpx.post(
        f"{base}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": dialogue.prompt}], "temperature": 0},
        headers=auth,
        timeout=60,
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == dialogue.reply
    assert httpx.get(f"{base}/v1/models").status_code == 401


def test_invalid_policy_fails_startup_with_file_line_and_reason(guard_home: Path, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    bad = policies / "default.yaml"
    bad.write_text(
        'name: default\nversion: "1"\nrefusal_message: No.\ninput:\n  pii:\n    entities:\n      NAME: redact\n'
    )
    env = _env(guard_home, tmp_path, GUARD_POLICY_DIR=str(policies), PORT=str(_free_port()))
    result = subprocess.run([GUARD, "serve"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"{bad}:7:" in result.stderr
    assert "Invalid enum value" in result.stderr


def test_production_profile_refuses_to_start_without_its_models(guard_home: Path, tmp_path: Path) -> None:
    env = _env(guard_home, tmp_path, GUARD_PROFILE="production", GUARD_API_KEY="k" * 32, HF_HUB_OFFLINE="1")
    env["TORCH_HOME"] = str(tmp_path / "torch")
    result = subprocess.run([GUARD, "serve"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "guard models pull" in result.stderr
