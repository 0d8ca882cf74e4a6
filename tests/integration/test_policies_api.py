"""Policy versions in the database, ``/v1/policies`` reads, and hot reload (endpoint and SIGHUP)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from guard.app import StartupError, create_app
from guard.devmodels import scripted
from guard.models import Models
from guard.settings import Settings
from tests.conftest import POLICIES, ROOT
from tests.integration.conftest import API_KEY, AUTH, dev_settings
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.integration

BAD_POLICIES = ROOT / "tests" / "data" / "bad_policies"
BAD_CASES = [
    "syntax_error.yaml",
    "threshold_too_high.yaml",
    "threshold_string.yaml",
    "entity_typo.yaml",
    "unknown_check.yaml",
    "duplicate_key.yaml",
    "python_tag.yaml",
    "alias_bomb.yaml",
    "empty.yaml",
    "same_version_other_content",
]
CHAT = "/v1/chat/completions"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped policies that a test may edit before reloading."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


@pytest.fixture
async def reload_client(
    guard_home: Path, database_url: str, models: Models, policy_dir: Path
) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(dev_settings(guard_home, database_url, policy_dir=policy_dir), models=models)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@asynccontextmanager
async def _served(settings: Settings, models: Models) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    """The app with its lifespan in this test's own task and main thread (as under uvicorn), so that its SIGHUP
    handler is installed and a request can be driven chunk by chunk. (Litestar's test client runs the app in a
    portal thread; an async fixture would end the lifespan's task group in another task.)"""
    app = create_app(settings, models=models)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # Litestar types its ASGI events precisely
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield app, http


def _edit_default(policy_dir: Path, *, version: str | None, refusal: str) -> None:
    """Change the default policy's refusal message (and its version, unless ``None``)."""
    path = policy_dir / "default.yaml"
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^refusal_message: .*$", f'refusal_message: "{refusal}"', text, count=1)
    if version is not None:
        text = re.sub(r"(?m)^version: .*$", f'version: "{version}"', text, count=1)
    path.write_text(text, encoding="utf-8")


async def _in_force(client: httpx.AsyncClient) -> dict[str, tuple[str, str]]:
    response = await client.get("/v1/policies", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["name"] for p in body["policies"] if p["default"]] == [body["default"]]
    return {p["name"]: (p["version"], p["sha256"]) for p in body["policies"]}


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_list_and_fetch_the_policies_in_force(client: AsyncTestClient[Any]) -> None:
    policies = await _in_force(client)
    assert policies["default"][1] == _file_sha256(POLICIES / "default.yaml")
    assert policies["strict"][1] == _file_sha256(POLICIES / "strict.yaml")

    loaded = await client.get("/v1/policies/default", headers=AUTH)
    assert loaded.status_code == 200
    assert loaded.headers["content-type"].startswith("text/yaml")
    assert loaded.content == (POLICIES / "default.yaml").read_bytes()

    for missing in ("/v1/policies/nope", f"/v1/policies/default?sha256={'0' * 64}"):
        response = await client.get(missing, headers=AUTH)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["code"] == "not_found"
    assert (await client.get("/v1/policies")).status_code == 401


async def test_every_audit_row_resolves_to_the_exact_yaml(client: AsyncTestClient[Any], database_url: str) -> None:
    """Must-show 2: after traffic, each row's stamp is set and fetches bytes hashing to that stamp."""
    plain = {"messages": [{"role": "user", "content": scripted("plain").prompt}], "temperature": 0}
    assert (await client.post(CHAT, json=plain, headers=AUTH)).status_code == 200
    assert (await client.post(CHAT, json={**plain, "stream": True}, headers=AUTH)).status_code == 200
    strict = await client.post(CHAT, json=plain, headers={**AUTH, "X-Guard-Policy": "strict"})
    assert strict.status_code == 200, strict.text
    scan = await client.post("/v1/scan", json={"text": "Mail jane.doe@example.com"}, headers=AUTH)
    assert scan.status_code == 200

    rows = await audit_rows(database_url)
    assert len(rows) >= 5  # a whole answer each, two records for the stream, one scan
    stamps = {(row["policy_name"], row["policy_version"], row["policy_sha256"]) for row in rows}
    assert {name for name, _, _ in stamps} == {"default", "strict"}
    for name, version, sha256 in stamps:
        assert name
        assert version
        assert sha256
        response = await client.get(f"/v1/policies/{name}", params={"sha256": sha256}, headers=AUTH)
        assert response.status_code == 200, response.text
        assert hashlib.sha256(response.content).hexdigest() == sha256
        assert f'version: "{version}"' in response.text


async def test_reload_swaps_to_the_new_version_and_keeps_the_old_one_readable(
    reload_client: AsyncTestClient[Any], policy_dir: Path
) -> None:
    before = await _in_force(reload_client)
    old_yaml = (policy_dir / "default.yaml").read_bytes()
    _edit_default(policy_dir, version="9.0.0", refusal="Reloaded refusal.")

    response = await reload_client.post("/v1/policies/reload", headers=AUTH)
    assert response.status_code == 200, response.text
    after = {p["name"]: (p["version"], p["sha256"]) for p in response.json()["policies"]}
    assert after["default"] == ("9.0.0", _file_sha256(policy_dir / "default.yaml"))
    assert after["strict"] == before["strict"]
    assert await _in_force(reload_client) == after

    old = await reload_client.get("/v1/policies/default", params={"sha256": before["default"][1]}, headers=AUTH)
    assert old.content == old_yaml
    current = await reload_client.get("/v1/policies/default", headers=AUTH)
    assert current.content == (policy_dir / "default.yaml").read_bytes()


@pytest.mark.parametrize("case", BAD_CASES)
async def test_a_bad_policy_is_refused_and_nothing_changes(
    reload_client: AsyncTestClient[Any], policy_dir: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Must-show 1 (reload side): each invalid file → 4xx naming it; the versions in force are unchanged."""
    before = await _in_force(reload_client)
    source = BAD_POLICIES / case
    files = sorted(source.glob("*.yaml")) if source.is_dir() else [source]
    assert files, f"missing fixture {source}"
    for path in files:
        shutil.copy(path, policy_dir / f"zz_{path.name}")
    # A valid edit in the same reload must not slip through either: all or nothing.
    _edit_default(policy_dir, version="9.9.9", refusal="Must not be applied.")

    response = await reload_client.post("/v1/policies/reload", headers=AUTH)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["code"] == "unprocessable"
    assert "zz_" in error["message"], error["message"]  # names the offending file
    assert await _in_force(reload_client) == before
    assert any("policy reload" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)


JUDGED_POLICY = """\
name: judged
version: "1"
refusal_message: No.
input:
  prohibited_use:
    categories:
      weapons:
        judge: 0.5
"""


async def test_reload_refuses_a_valid_policy_whose_layers_cannot_run_here(
    reload_client: AsyncTestClient[Any], policy_dir: Path
) -> None:
    """A judge layer without a judge model fails the reload as it fails startup: never a silent no-op."""
    before = await _in_force(reload_client)
    (policy_dir / "judged.yaml").write_text(JUDGED_POLICY, encoding="utf-8")
    response = await reload_client.post("/v1/policies/reload", headers=AUTH)
    assert response.status_code == 422, response.text
    assert "'judged' cannot run here" in response.json()["error"]["message"]
    assert await _in_force(reload_client) == before


async def test_reload_refuses_a_changed_file_under_a_version_already_stored(
    reload_client: AsyncTestClient[Any], policy_dir: Path
) -> None:
    before = await _in_force(reload_client)
    version, stored_sha = before["default"]
    _edit_default(policy_dir, version=None, refusal="Same version, other content.")
    new_sha = _file_sha256(policy_dir / "default.yaml")

    response = await reload_client.post("/v1/policies/reload", headers=AUTH)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "'default'" in message
    assert version in message
    assert stored_sha[:12] in message
    assert new_sha[:12] in message
    assert await _in_force(reload_client) == before


async def test_startup_refuses_a_changed_file_under_a_version_already_stored(
    guard_home: Path, database_url: str, models: Models, policy_dir: Path
) -> None:
    settings = dev_settings(guard_home, database_url, policy_dir=policy_dir)
    async with create_app(settings, models=models).lifespan():
        pass  # records the shipped versions
    _edit_default(policy_dir, version=None, refusal="Same version, other content.")
    with pytest.raises(BaseExceptionGroup) as refused:  # Litestar's lifespan task group wraps it
        async with create_app(settings, models=models).lifespan():
            pass
    assert refused.group_contains(StartupError, match=r"'default' version '1\.\d+\.\d+' is already recorded")


async def _stream_with_reload_midway(app: Litestar, reload: Any) -> list[bytes]:
    """POST a streamed chat straight to the ASGI app; when its first chunk arrives, run ``reload()`` and then let
    the stream go on. (The test client would buffer the whole response first.)"""
    body = json.dumps(
        {"messages": [{"role": "user", "content": scripted("plain").prompt}], "temperature": 0, "stream": True}
    ).encode()
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": CHAT,
        "raw_path": CHAT.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {API_KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    chunks: list[bytes] = []
    sent, finished = False, asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()  # the client disconnects once the whole response is in, as a server reports it
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message["type"] == "http.response.body" and message.get("body"):
            if not chunks:
                await reload()
            chunks.append(message["body"])
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            finished.set()

    await app(scope, receive, send)  # type: ignore[arg-type]
    return chunks


async def test_a_stream_in_flight_finishes_on_the_version_it_started_with(
    guard_home: Path, database_url: str, models: Models, policy_dir: Path
) -> None:
    async with _served(dev_settings(guard_home, database_url, policy_dir=policy_dir), models) as served:
        await _check_stream_keeps_its_version(*served, policy_dir, database_url)


async def _check_stream_keeps_its_version(
    app: Litestar, reload_client: httpx.AsyncClient, policy_dir: Path, database_url: str
) -> None:
    old_sha = (await _in_force(reload_client))["default"][1]
    _edit_default(policy_dir, version="9.1.0", refusal="Reloaded mid-stream.")
    new_sha = _file_sha256(policy_dir / "default.yaml")

    async def reload() -> None:
        response = await reload_client.post("/v1/policies/reload", headers=AUTH)
        assert response.status_code == 200, response.text

    chunks = await _stream_with_reload_midway(app, reload)
    events = [line.removeprefix(b"data: ") for line in b"".join(chunks).splitlines() if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    final = next(e for e in map(json.loads, events[:-1]) if e["choices"] and e["choices"][0]["finish_reason"])
    assert (await _in_force(reload_client))["default"] == ("9.1.0", new_sha)  # the reload happened mid-stream

    after = await reload_client.post(
        CHAT, json={"messages": [{"role": "user", "content": scripted("plain").prompt}]}, headers=AUTH
    )
    assert after.status_code == 200
    rows = {row["decision_id"]: row for row in await audit_rows(database_url)}
    closing = rows[final["guard"]["decision_id"]]
    assert closing["kind"] == "stream_close"
    assert (closing["policy_version"], closing["policy_sha256"]) != ("9.1.0", new_sha)
    assert closing["policy_sha256"] == rows[closing["parent_id"]]["policy_sha256"] == old_sha
    fresh = rows[after.headers["x-guard-decision-id"]]
    assert (fresh["policy_version"], fresh["policy_sha256"]) == ("9.1.0", new_sha)


async def test_sighup_reloads_the_policies(
    guard_home: Path, database_url: str, models: Models, policy_dir: Path
) -> None:
    async with _served(dev_settings(guard_home, database_url, policy_dir=policy_dir), models) as (_, client):
        await _check_sighup_reloads(client, policy_dir)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL  # the handler goes with the app


async def _check_sighup_reloads(reload_client: httpx.AsyncClient, policy_dir: Path) -> None:
    # Without the app's handler the default action would kill the test run: check it is there first.
    assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    _edit_default(policy_dir, version="9.2.0", refusal="Reloaded by SIGHUP.")
    os.kill(os.getpid(), signal.SIGHUP)
    for _ in range(100):
        if (await _in_force(reload_client))["default"][0] == "9.2.0":
            break
        await asyncio.sleep(0.05)
    assert (await _in_force(reload_client))["default"] == ("9.2.0", _file_sha256(policy_dir / "default.yaml"))
