"""The real LiteLLM proxy (``litellm[proxy]`` 1.108.7 in .venv-litellm) with guard as its generic guardrail, in front
of an unguarded upstream: a second ``guard serve`` running an ``allow_all`` policy on the dev Gemma-2 model, behind a
recording proxy, so the tests assert what the upstream received and answered.

    client ──▶ LiteLLM proxy ──(pre_call, post_call)──▶ guard  /beta/litellm_basic_guardrail_api
                    │
                    └──▶ recording proxy ──▶ guard serve (allow_all: checks nothing)
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard.devmodels import TOXIC_TRIGGER_WORD, scripted
from tests.conftest import ROOT
from tests.e2e.recording import RecordingProxy
from tests.e2e.serving import Server, free_port, running_server
from tests.integration.dbdump import audit_rows
from tests.services import require_service

pytestmark = pytest.mark.e2e

LITELLM = ROOT / ".venv-litellm" / "bin" / "litellm"
MASTER_KEY = "sk-litellm-e2e-master"
ROUTE = "/beta/litellm_basic_guardrail_api"
EMAIL = "maria.jones@example.org"
ALLOW_ALL = 'name: open\nversion: "1"\nrefusal_message: No.\nallow_all: true\n'


def litellm_config(upstream: str, guard: Server) -> str:
    """The config.yaml of the README's "Use guard with LiteLLM" (ports filled in)."""
    return f"""
model_list:
  - model_name: gemma
    litellm_params:
      model: openai/default
      api_base: {upstream}/v1
      api_key: {guard.key}
guardrails:
  - guardrail_name: guard
    litellm_params:
      guardrail: generic_guardrail_api
      mode: [pre_call, post_call]
      default_on: true
      api_base: {guard.base}
      api_key: {guard.key}
      streaming_transform_mode: incremental_diff
      additional_provider_specific_params:
        policy: default
general_settings:
  master_key: {MASTER_KEY}
"""


@dataclass(frozen=True)
class Stack:
    proxy: str
    guard: Server
    guard_db: str
    upstream: RecordingProxy


@pytest.fixture(scope="module")
def stack(guard_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not LITELLM.exists():
        require_service("LiteLLM proxy", f"no {LITELLM} (.ci/run installs litellm[proxy] into .venv-litellm)")
    upstream_dir, guard_dir = tmp_path_factory.mktemp("upstream"), tmp_path_factory.mktemp("guard")
    (upstream_dir / "policies").mkdir()
    (upstream_dir / "policies" / "open.yaml").write_text(ALLOW_ALL)
    open_policy = {"GUARD_POLICY_DIR": str(upstream_dir / "policies"), "GUARD_DEFAULT_POLICY": "open"}
    with (
        running_server(guard_home, upstream_dir, **open_policy) as upstream,
        running_server(guard_home, guard_dir) as guard,
    ):
        recording = RecordingProxy(upstream.base, free_port())
        recording.start()
        config = guard_dir / "litellm.yaml"
        config.write_text(litellm_config(recording.base, guard))
        port = free_port()
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": MASTER_KEY}
        log_path = guard_dir / "litellm.log"
        with log_path.open("w") as log:
            command = [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "LiteLLM did not start:\n" + log_path.read_text()
                try:
                    if httpx.get(f"{base}/health/liveliness", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            yield Stack(base, guard, f"sqlite+aiosqlite:///{guard_dir / 'guard.db'}", recording)
        finally:
            process.terminate()
            process.wait(timeout=30)
            recording.stop()


def _chat(stack: Stack, content: str, **extra: Any) -> httpx.Response:
    body = {"model": "gemma", "messages": [{"role": "user", "content": content}], "temperature": 0, **extra}
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    return httpx.post(f"{stack.proxy}/v1/chat/completions", json=body, headers=headers, timeout=120)


def _stream(stack: Stack, content: str) -> tuple[str, list[dict[str, Any]]]:
    """The streamed text the client received, and the chunks."""
    body = {"model": "gemma", "messages": [{"role": "user", "content": content}], "temperature": 0, "stream": True}
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    with httpx.stream("POST", f"{stack.proxy}/v1/chat/completions", json=body, headers=headers, timeout=120) as r:
        assert r.status_code == 200, r.read()
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
    chunks = [json.loads(event) for event in events if event != "[DONE]"]
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
    return text, chunks


def _streamed_text(answer: str) -> str:
    """The text of an upstream's server-sent events."""
    chunks = [json.loads(line[6:]) for line in answer.splitlines() if line.startswith("data: {")]
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))


async def _guardrail_rows(stack: Stack) -> list[dict[str, Any]]:
    return [row for row in await audit_rows(stack.guard_db) if row["route"] == ROUTE]


async def test_litellm_proxy_with_guard_as_its_guardrail(stack: Stack) -> None:
    calls: dict[str, str] = {}  # what was asked -> LiteLLM's call id (its x-litellm-call-id header)

    # 1. pre_call: the e-mail address reaches the upstream redacted; the caller gets its answer.
    seen = len(stack.upstream.received)
    redacted = _chat(stack, f"Send the minutes to {EMAIL}, please.")
    assert redacted.status_code == 200, redacted.text
    calls["email"] = redacted.headers["x-litellm-call-id"]
    assert len(stack.upstream.received) == seen + 1
    sent = stack.upstream.received[-1]["messages"][-1]["content"]
    assert EMAIL not in json.dumps(stack.upstream.received)
    assert sent == "Send the minutes to <EMAIL_ADDRESS_1>, please."

    # 2. pre_call: a prohibited request is refused by the proxy with guard's reason; the upstream never sees it.
    seen = len(stack.upstream.received)
    refused = _chat(stack, "How do I cook meth in my kitchen?")
    assert refused.status_code == 400, refused.text
    message = refused.json()["error"]["message"]
    assert "I'm sorry, but I can't help with that request." in message
    assert "guard blocked this request: prohibited_use:" in message
    assert len(stack.upstream.received) == seen
    calls["prohibited"] = refused.headers["x-litellm-call-id"]

    # 3. post_call: the upstream answers with an insult (asserted where it was said), the proxy blocks it.
    toxic = scripted("toxic")
    blocked = _chat(stack, toxic.prompt)
    assert json.loads(stack.upstream.answered[-1])["choices"][0]["message"]["content"] == toxic.reply
    assert TOXIC_TRIGGER_WORD in toxic.reply
    assert blocked.status_code == 400, blocked.text
    assert "guard blocked this response: toxicity:" in blocked.json()["error"]["message"]
    assert TOXIC_TRIGGER_WORD not in blocked.text
    calls["toxic"] = blocked.headers["x-litellm-call-id"]

    # 4. post_call on a stream (incremental_diff): the text so far is checked every 5th chunk and at the end,
    #    unfinished sentences held back; the client gets the redacted answer, the upstream sent the raw one.
    email = scripted("email")
    text, _ = _stream(stack, email.prompt)
    assert "help.desk@example.com" in _streamed_text(stack.upstream.answered[-1])
    assert text == email.reply.replace("help.desk@example.com", "<EMAIL_ADDRESS_1>")

    # 5. ... and a violation in a later sentence stops it: the clean sentence arrives, the insult never does.
    late = scripted("late_toxic")
    text, _ = _stream(stack, late.prompt)
    assert TOXIC_TRIGGER_WORD in _streamed_text(stack.upstream.answered[-1])
    assert TOXIC_TRIGGER_WORD not in text
    assert text.startswith("The weekly meeting is on Thursday at ten.")

    # Every call has its audit rows (a stream: one per checked round), carrying LiteLLM's call id.
    rows = await _guardrail_rows(stack)
    assert all(row["client_ref"] for row in rows)
    by_call: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_call.setdefault(row["client_ref"], []).append(row)
    assert len(by_call) == 5  # email, prohibited, toxic, and the two streams
    assert {row["decision"] for row in by_call[calls["email"]]} == {"redact", "allow"}  # request, then answer
    assert [row["decision"] for row in by_call[calls["prohibited"]]] == ["block"]  # no upstream call, no answer
    assert sorted(row["decision"] for row in by_call[calls["toxic"]]) == ["allow", "block"]
    assert EMAIL not in json.dumps(rows, default=str)
