"""The real server process over HTTP, started the way `make serve` starts it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from guard.devmodels import scripted
from tests.e2e.serving import GUARD, free_port, running_server, server_env

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(guard_home: Path, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    with running_server(guard_home, tmp_path) as running:
        yield running.base, running.auth
    assert "DEV MODELS IN USE" in running.log.read_text()


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
    env = server_env(guard_home, tmp_path, GUARD_POLICY_DIR=str(policies), PORT=str(free_port()))
    result = subprocess.run([GUARD, "serve"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"{bad}:7:" in result.stderr
    assert "Invalid enum value" in result.stderr


def test_production_profile_refuses_to_start_without_its_models(guard_home: Path, tmp_path: Path) -> None:
    env = server_env(guard_home, tmp_path, GUARD_PROFILE="production", GUARD_API_KEY="k" * 32, HF_HUB_OFFLINE="1")
    env["TORCH_HOME"] = str(tmp_path / "torch")
    result = subprocess.run([GUARD, "serve"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "guard models pull" in result.stderr
