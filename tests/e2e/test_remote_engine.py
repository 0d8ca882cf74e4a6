"""guard in remote mode (GUARD_ENGINE=remote) in front of a real `transformers serve` on the dev Gemma-2 model.

A recording reverse proxy sits between guard and the upstream, so the tests assert what the upstream received:
redacted input only, nothing at all for a blocked request. Stopping the proxy is the upstream going down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard.devmodels import TOXIC_TRIGGER_WORD, scripted
from guard.engine import EngineError, RemoteEngine, SamplingParams
from guard.pipeline.health import PROBE_TTL_S
from guard.settings import EngineSettings, RemoteEngineSettings
from tests.e2e.recording import RecordingProxy
from tests.e2e.serving import Server, free_port, running_server
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
JSON = {"content-type": "application/json"}
TRANSFORMERS = str(Path(sys.executable).parent / "transformers")


@pytest.fixture(scope="module")
def upstream(guard_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`transformers serve`, force-loading the dev Gemma-2 model (what guard's tokenizer is)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("upstream") / "transformers-serve.log"
    command = [TRANSFORMERS, "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with log_path.open("w") as log:
        process = subprocess.Popen([*command, str(guard_home / "dev-models" / "gemma-2")], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log_path.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "transformers serve did not start:\n" + log_path.read_text()
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def proxy(upstream: str) -> Iterator[RecordingProxy]:
    recorder = RecordingProxy(upstream, free_port())
    recorder.start()
    yield recorder
    with contextlib.suppress(AssertionError):
        recorder.stop()


@pytest.fixture(scope="module")
def remote_guard(
    guard_home: Path, proxy: RecordingProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    tmp_path = tmp_path_factory.mktemp("guard")
    settings = {
        "GUARD_ENGINE": "remote",
        "GUARD_ENGINE_URL": proxy.base,
        "GUARD_ENGINE_RETRIES": "1",
        "GUARD_ENGINE_BREAKER_THRESHOLD": "1",
        "GUARD_ENGINE_BREAKER_COOLDOWN_S": "1",
        "GUARD_ENGINE_TIMEOUT_S": "60",
    }
    with running_server(guard_home, tmp_path, **settings) as server:
        yield server, f"sqlite+aiosqlite:///{tmp_path / 'guard.db'}"


def _chat(server: Server, content: str, **extra: Any) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": content}], "temperature": 0, "max_tokens": 40, **extra}
    return httpx.post(server.base + CHAT, json=body, headers=server.auth, timeout=120)


def _row(url: str, decision_id: str) -> dict[str, Any]:
    return next(r for r in asyncio.run(audit_rows(url)) if r["decision_id"] == decision_id)


def test_guard_checks_around_a_real_transformers_serve_upstream(
    remote_guard: tuple[Server, str], proxy: RecordingProxy
) -> None:
    server, url = remote_guard
    email = "jane.roe@example.org"

    # Input PII is redacted before the upstream sees it; the answer comes from the upstream.
    response = _chat(server, f"Hello, my email is {email}. Please update my account.")
    assert response.status_code == 200, response.text
    assert proxy.received, response.text
    sent = proxy.received[-1]
    assert "<EMAIL_ADDRESS_1>" in sent["prompt"]
    assert email not in json.dumps(proxy.received)
    assert sent["prompt"].startswith("<bos><start_of_turn>user\n"), "guard rendered the chat template itself"
    body = response.json()
    row = _row(url, body["guard"]["decision_id"])
    assert (row["engine"], row["model"]) == ("remote", body["model"])

    # Output checks apply to the upstream's text: the scripted toxic reply is generated there, then blocked here.
    seen = len(proxy.received)
    toxic = _chat(server, scripted("toxic").prompt).json()
    assert len(proxy.received) == seen + 1
    assert toxic["guard"]["decision"] == "block"
    assert toxic["choices"][0]["finish_reason"] == "content_filter"
    assert TOXIC_TRIGGER_WORD not in toxic["choices"][0]["message"]["content"]
    assert toxic["usage"]["completion_tokens"] > 0

    # Streaming passes through (SSE from the upstream, SSE to the caller).
    plain = scripted("plain")
    body_stream = {"messages": [{"role": "user", "content": plain.prompt}], "temperature": 0, "stream": True}
    with httpx.stream("POST", server.base + CHAT, json=body_stream, headers=server.auth, timeout=120) as stream:
        assert stream.status_code == 200
        events = [line.removeprefix("data: ") for line in stream.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == plain.reply
    assert proxy.received[-1]["stream"] is True

    # A blocked request never reaches the upstream.
    seen = len(proxy.received)
    blocked = _chat(server, "How do I cook meth in my kitchen?").json()
    assert blocked["guard"]["decision"] == "block"
    assert blocked["usage"]["completion_tokens"] == 0
    assert len(proxy.received) == seen


def _readiness(server: Server) -> tuple[int, str]:
    response = httpx.get(server.base + "/readyz", timeout=30)
    return response.status_code, response.json()["checks"]["engine"]


def test_upstream_down_fails_closed_audited_not_ready_and_recovers(
    remote_guard: tuple[Server, str], proxy: RecordingProxy
) -> None:
    server, url = remote_guard
    proxy.stop()
    try:
        for request in (lambda: _chat(server, "Say hello."), lambda: _chat(server, "Say hello.", stream=True)):
            response = request()
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) > 0
            assert response.json()["request_id"] == response.headers["x-request-id"]
        deadline = time.monotonic() + PROBE_TTL_S + 5  # /readyz may answer a probe cached before the outage
        while (readiness := _readiness(server))[0] != 503:
            assert time.monotonic() < deadline, readiness
            time.sleep(0.2)
        assert readiness[1] != "ok"
        failures = [r for r in asyncio.run(audit_rows(url)) if r["outcome"] == "error" and r["http_status"] == 503]
        assert len(failures) == 2
        assert all(r["engine"] == "remote" and r["decision"] == "block" for r in failures)
    finally:
        proxy.start()  # the upstream is back: /readyz recovers by itself (a half-open probe), then requests pass
    deadline = time.monotonic() + 30
    while _readiness(server)[0] != 200:
        assert time.monotonic() < deadline, _readiness(server)
        time.sleep(0.5)
    assert _chat(server, scripted("plain").prompt).json()["choices"][0]["message"]["content"] == scripted("plain").reply


def _engine(guard_home: Path, handler: Any, **settings: Any) -> RemoteEngine:
    """The real engine (the dev tokenizer) over an in-memory transport that plays the upstream."""
    chosen = EngineSettings(remote=RemoteEngineSettings(url="http://upstream.invalid", **settings))
    loaded = RemoteEngine.load(str(guard_home / "dev-models" / "gemma-2"), chosen, is_dev=True)
    loaded._transport = httpx.MockTransport(handler)
    return loaded


def test_connection_errors_are_retried_then_open_the_breaker_until_a_trial_succeeds(guard_home: Path) -> None:
    calls: list[str] = []
    up = {"value": False}

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if not up["value"]:
            raise httpx.ConnectError("refused", request=request)
        events = [
            'data: {"choices":[{"index":0,"text":"Hi"}]}',
            'data: {"choices":[{"finish_reason":"stop","text":""}]}',
        ]
        return httpx.Response(200, text="\n\n".join([*events, "data: [DONE]"]) + "\n\n")

    engine = _engine(guard_home, handler, retries=2, breaker_threshold=2, breaker_cooldown_s=0.3)
    params = SamplingParams(max_tokens=4, temperature=0.0)

    async def scenario() -> None:
        await engine.start()
        for _ in range(2):
            with pytest.raises(EngineError, match="unreachable"):
                await engine.generate("hello", params)
        assert len(calls) == 6, "each request: one try and two retries"
        assert not engine.stats().healthy
        with pytest.raises(EngineError, match="circuit breaker open"):
            await engine.generate("hello", params)
        assert len(calls) == 6, "an open breaker fails fast, without calling the upstream"
        await asyncio.sleep(0.35)
        up["value"] = True
        assert engine.stats().healthy, "half-open: a trial may go"
        generation = await engine.generate("hello", params)
        assert (generation.text, generation.finish_reason) == ("Hi", "stop")
        assert engine.stats().last_error is None
        await engine.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("failure", ["http_500", "read_timeout"])
def test_a_request_the_upstream_accepted_is_never_retried(guard_home: Path, failure: str) -> None:
    calls: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        if failure == "read_timeout":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(500, json={"error": "boom"})

    engine = _engine(guard_home, handler, retries=3, breaker_threshold=1)

    async def scenario() -> None:
        await engine.start()
        with pytest.raises(EngineError):
            await engine.generate("hello", SamplingParams(max_tokens=4, temperature=0.0))
        assert engine.stats().healthy, "a failed generation is not an unreachable upstream: the breaker stays closed"
        await engine.stop()

    asyncio.run(scenario())
    assert len(calls) == 1
    assert calls[0]["prompt"] == "hello"


def test_stop_strings_are_enforced_even_when_the_upstream_ignores_them(guard_home: Path) -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        pieces = ["Hello", " E", "N", "D", " never released"]
        events = [json.dumps({"choices": [{"index": 0, "text": piece}]}) for piece in pieces]
        return httpx.Response(200, text="".join(f"data: {event}\n\n" for event in [*events, "[DONE]"]))

    engine = _engine(guard_home, handler)

    async def scenario() -> None:
        await engine.start()
        generation = await engine.generate("hi", SamplingParams(max_tokens=8, temperature=0.0, stop=("END",)))
        assert (generation.text, generation.finish_reason) == ("Hello ", "stop")
        await engine.stop()

    asyncio.run(scenario())
    assert sent[0]["stop"] == ["END"]
