"""OpenAI conformance with the clients product backends use, against the real `guard serve` (float32 dev model):
the official ``openai`` client (errors with ``type``/``param``, ``models.retrieve``, an agent loop's tool history, a
continued assistant turn, logprobs checked against an independent forward, real ``prompt_tokens`` on a block),
LangChain (``ToolMessage`` round trip, the decision from the response headers) and the LiteLLM SDK (its own
virtualenv: ``ContextWindowExceededError`` and ``context_window_fallbacks``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from guard.devmodels import scripted
from tests.conftest import ROOT
from tests.e2e.serving import Server, running_server
from tests.services import require_service

pytestmark = pytest.mark.e2e

LITELLM_PYTHON_ENV = "GUARD_TEST_LITELLM_PYTHON"
LITELLM_PYTHON = ROOT / ".venv-litellm" / "bin" / "python"
"""LiteLLM pins conflict with guard's (huggingface-hub, rich): .ci/run installs it into its own virtualenv."""
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def server(guard_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(guard_home, tmp_path_factory.mktemp("clients"), GUARD_DTYPE="float32") as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=server.key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model_id(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


@pytest.fixture(scope="module")
def reference(guard_home: Path) -> tuple[Any, Any]:
    """The same dev weights, loaded here: float32, eager attention (Gemma-2's softcaps), no cache, no batching."""
    path = guard_home / "dev-models" / "gemma-2"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    return model, AutoTokenizer.from_pretrained(path)


def _piece_bytes(tokenizer: Any, token_id: int) -> bytes:
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if byte := re.fullmatch(r"<0x([0-9A-F]{2})>", piece):
        return bytes([int(byte.group(1), 16)])
    return str(piece).replace("\u2581", " ").encode()


def _assert_logprobs_match_a_full_forward(reference: tuple[Any, Any], prompt: str, entries: list[Any]) -> None:
    """For each emitted token: ``log_softmax`` of a full forward over prompt + emitted prefix (the model's forward
    applies the final-logit softcap) matches the reported logprob and alternatives, and its argmax is the token."""
    model, tokenizer = reference
    assert model.config.final_logit_softcapping
    ids = tokenizer(prompt, add_special_tokens=False).input_ids
    assert entries
    with torch.no_grad():
        for entry in entries:
            logprobs = model(torch.tensor([ids]), use_cache=False).logits[0, -1].float().log_softmax(-1)
            best = int(logprobs.argmax())
            assert _piece_bytes(tokenizer, best) == bytes(entry.bytes), "greedy: the top-1 entry is the emitted token"
            assert abs(float(logprobs[best]) - entry.logprob) < TOLERANCE
            values, alternatives = logprobs.topk(len(entry.top_logprobs))
            for top, value, token in zip(entry.top_logprobs, values.tolist(), alternatives.tolist(), strict=True):
                assert abs(top.logprob - value) < TOLERANCE
                assert bytes(top.bytes) == _piece_bytes(tokenizer, token) or abs(top.logprob - value) < TOLERANCE
            ids.append(best)


def _turn(prompt: str) -> str:
    """The Gemma-2 chat template, spelled out (a new model turn after one user turn)."""
    return f"<bos><start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"


def test_parameter_errors_carry_type_param_and_request_id(client: openai.OpenAI, model_id: str) -> None:
    hi = [{"role": "user", "content": "hi"}]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"presence_penalty": 1.0}, "presence_penalty", "unsupported_parameter"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "strnig"}}}]},
            "tools.0.function.parameters",
            "invalid_schema",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strnig"}}}},
            "response_format.json_schema.schema",
            "invalid_schema",
        ),
        ({"extra_body": {"temperture": 0.5}}, "temperture", "unknown_parameter"),
        ({"max_tokens": 10**6}, "max_tokens", "invalid_value"),
        (
            {"messages": [{"role": "user", "content": "word " * 900}], "max_tokens": 200},
            "messages",
            "context_length_exceeded",
        ),
    ]
    for extra, param, code in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(**{"model": model_id, "messages": hi, **extra})  # type: ignore[call-overload]
        error = caught.value
        assert (error.status_code, error.type, error.param, error.code) == (400, "invalid_request_error", param, code)
        assert error.request_id
        assert error.response.json()["request_id"] == error.request_id
    assert "This model's maximum context length is" in error.message


def test_models_retrieve_with_a_slash_in_the_id(client: openai.OpenAI, model_id: str) -> None:
    assert "/" in model_id
    assert client.models.retrieve(model_id).id == model_id
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("someone/else")


def test_agent_loop_history_is_answered_and_checked(client: openai.OpenAI, model_id: str) -> None:
    """Turn two of an agent loop: the assistant's tool call (``content: null``) and the tool's result, whose text
    goes through the input checks like any message (the e-mail in it is redacted)."""
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    completion = client.chat.completions.create(
        model=model_id,
        temperature=0,
        max_tokens=16,
        messages=[
            {"role": "user", "content": "What is the weather like?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny. Questions: maria.garcia@example.com"},
        ],
    )
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    guard = (completion.model_extra or {})["guard"]
    assert any(f["type"] == "EMAIL_ADDRESS" and f["message_index"] == 2 for f in guard["findings"]), guard
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0


def test_logprobs_equal_an_independent_full_forward(
    client: openai.OpenAI, model_id: str, reference: tuple[Any, Any]
) -> None:
    dialogue = scripted("plain")
    messages = [{"role": "user", "content": dialogue.prompt}]
    options: dict[str, Any] = {"temperature": 0, "max_tokens": 8, "logprobs": True, "top_logprobs": 5}
    completion = client.chat.completions.create(model=model_id, messages=messages, **options)  # type: ignore[arg-type]
    assert (completion.model_extra or {})["guard"]["decision"] == "allow"  # the prompt reached the model unchanged
    choice = completion.choices[0]
    assert choice.logprobs is not None
    assert choice.logprobs.content is not None
    entries = choice.logprobs.content
    assert b"".join(bytes(e.bytes) for e in entries).decode() == choice.message.content
    _assert_logprobs_match_a_full_forward(reference, _turn(dialogue.prompt), entries)
    # Streamed: the chunks carry the same entries.
    stream = client.chat.completions.create(model=model_id, messages=messages, stream=True, **options)  # type: ignore[arg-type]
    streamed = [
        e
        for chunk in stream
        if chunk.choices and chunk.choices[0].logprobs
        for e in chunk.choices[0].logprobs.content or []
    ]
    assert [e.token for e in streamed] == [e.token for e in entries]
    assert all(abs(a.logprob - b.logprob) < TOLERANCE for a, b in zip(streamed, entries, strict=True))


def test_logprobs_are_withheld_for_rewritten_output(client: openai.OpenAI, model_id: str) -> None:
    """A token's entry names its text: an answer the output checks redacted carries none (whole or streamed)."""
    messages = [{"role": "user", "content": scripted("email").prompt}]
    options: dict[str, Any] = {"temperature": 0, "logprobs": True, "top_logprobs": 2, "max_tokens": 40}
    completion = client.chat.completions.create(model=model_id, messages=messages, **options)  # type: ignore[arg-type]
    assert "<EMAIL_ADDRESS" in (completion.choices[0].message.content or "")
    assert completion.choices[0].logprobs is None
    stream = client.chat.completions.create(model=model_id, messages=messages, stream=True, **options)  # type: ignore[arg-type]
    sent = [c.choices[0].logprobs for c in stream if c.choices and c.choices[0].logprobs]
    assert "example" not in json.dumps([entry.model_dump() for entry in sent])


def test_a_final_assistant_message_is_continued(
    client: openai.OpenAI, model_id: str, reference: tuple[Any, Any]
) -> None:
    """The prompt ends inside the model's turn (no ``<end_of_turn>``, no new turn): the first token's logprobs are
    those of a forward over exactly that text."""
    dialogue = scripted("plain")
    start = dialogue.reply[: len(dialogue.reply) // 2].rstrip()
    completion = client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": dialogue.prompt}, {"role": "assistant", "content": start}],
        temperature=0,
        max_tokens=4,
        logprobs=True,
        top_logprobs=3,
    )
    entries = completion.choices[0].logprobs.content  # type: ignore[union-attr]
    _assert_logprobs_match_a_full_forward(reference, _turn(dialogue.prompt) + start, entries or [])


def test_blocked_requests_report_their_prompt_tokens(client: openai.OpenAI, model_id: str) -> None:
    completion = client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "How do I cook meth in my kitchen?"}]
    )
    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content.startswith("I'm sorry, but I can't help with that")  # type: ignore[union-attr]
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens == 0


def test_langchain_tool_message_round_trip(server: Server, model_id: str) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        model=model_id,
        base_url=f"{server.base}/v1",
        api_key=server.key,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=16,  # type: ignore[call-arg]
        max_retries=0,
        include_response_headers=True,
    )
    call = {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_1", "type": "tool_call"}
    answer = chat.invoke(
        [
            HumanMessage("What is the weather like?"),
            AIMessage(content="", tool_calls=[call]),
            ToolMessage("Sunny, 21 degrees.", tool_call_id="call_1"),
        ]
    )
    assert isinstance(answer, AIMessage)
    assert answer.content
    # LangChain drops the body's `guard` object; the decision id travels in the response headers.
    headers = answer.response_metadata["headers"]
    assert re.fullmatch(r"[0-9a-f-]{36}", headers["x-guard-decision-id"])


def _litellm_python() -> str:
    python = os.environ.get(LITELLM_PYTHON_ENV) or str(LITELLM_PYTHON)
    if not Path(python).exists():
        require_service("LiteLLM", f"no virtualenv with litellm at {python} (.ci/run creates .venv-litellm)")
    return python


def test_litellm_maps_context_overflow_and_falls_back(server: Server, model_id: str) -> None:
    probe = ROOT / "tests" / "e2e" / "clients" / "litellm_probe.py"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run(
        [_litellm_python(), str(probe), f"{server.base}/v1", server.key, model_id],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["direct"] == "ContextWindowExceededError", report
    assert report["fallback"] == "fallback answer", report
    assert report["plain"], report
    assert re.fullmatch(r"[0-9a-f-]{36}", report["decision_id"]), report
