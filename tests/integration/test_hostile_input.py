"""Hostile input through the real app (dev models, a real database): never a 5xx, every refusal the app makes is
OpenAI's error shape with the request id beside it, and no refusal echoes a value that was sent (a field name is
named in ``param`` only when it is a plain ``[A-Za-z0-9_.]{1,64}`` path). The wire-level cases (invalid UTF-8 on a
socket, huge headers, truncated and chunked bodies) are in tests/e2e/test_hostile_wire.py."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from guard.app import create_app
from guard.audit import AuditRecord, AuditWriter, create_engine
from guard.audit.migrate import upgrade
from guard.models import Models
from tests.conftest import ROOT
from tests.integration.conftest import AUTH, dev_settings
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.integration

MARK = "qzhostile7f3a"  # appears in every hostile body: an error that echoes input would show it
JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}
NAUGHTY: list[str] = json.loads((ROOT / "tests" / "data" / "naughty" / "blns.json").read_text(encoding="utf-8"))


SAFE_PARAM = re.compile(r"[A-Za-z0-9_.]{1,64}")


def assert_error_shape(response: Any) -> dict[str, Any]:
    """OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with ``request_id`` beside it (= X-Request-Id)."""
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["request_id"] == response.headers["x-request-id"]
    assert isinstance(body["error"]["type"], str)
    assert body["error"]["type"]
    param = body["error"]["param"]
    assert param is None or SAFE_PARAM.fullmatch(param), param
    error: dict[str, Any] = body["error"]
    return error


def assert_clean(response: Any, *statuses: int, param: str | None = None) -> None:
    """No server error; a refusal is the error shape with the response's request id and without the input."""
    assert response.status_code < 500, response.text
    if statuses:
        assert response.status_code in statuses, response.text
    if response.status_code >= 400:
        error = assert_error_shape(response)
        assert MARK not in response.text
        if param is not None:
            assert error["param"] == param, error


def _chat(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "default", "messages": [{"role": "user", "content": content}], "max_tokens": 4, **extra}


RAW_BODIES: list[tuple[str, str, bytes, tuple[int, ...]]] = [
    # (id, route, raw body, expected statuses)
    ("malformed", "/v1/scan", b'{"text": "' + MARK.encode() + b'"', (400,)),
    ("bare word", "/v1/scan", b'{"text": ' + MARK.encode() + b"}", (400,)),
    ("truncated", "/v1/chat/completions", json.dumps(_chat(MARK)).encode()[:40], (400,)),
    ("empty body", "/v1/scan", b"", (400,)),
    ("json null", "/v1/scan", b"null", (400,)),
    ("json string", "/v1/scan", json.dumps(MARK).encode(), (400,)),
    ("trailing garbage", "/v1/scan", b'{"text": "hi"} ' + MARK.encode(), (400,)),
    ("NaN", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', (400,)),
    (
        "1e309 float",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 1e309}',
        (400,),
    ),
    (
        "1e309 int",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e309}',
        (400,),
    ),
    ("invalid utf-8", "/v1/scan", b'{"text": "\xff\xfe\xfd ' + MARK.encode() + b'"}', (400,)),
    ("deep nesting", "/v1/scan", b'{"text": "x", "policy": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", (400,)),
    ("deep objects", "/v1/scan", b'{"text": "x", "stage": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}", (400,)),
]


@pytest.mark.parametrize(
    ("route", "body", "statuses"), [case[1:] for case in RAW_BODIES], ids=[c[0] for c in RAW_BODIES]
)
async def test_malformed_bodies(
    client: AsyncTestClient[Any], route: str, body: bytes, statuses: tuple[int, ...]
) -> None:
    assert_clean(await client.post(route, content=body, headers=JSON_HEADERS), *statuses)


JSON_BODIES: list[tuple[str, str, Any, tuple[int, ...]]] = [
    ("text not a string", "/v1/scan", {"text": 123}, (400,)),
    ("text a list", "/v1/scan", {"text": [MARK]}, (400,)),
    ("text null", "/v1/scan", {"text": None}, (400,)),
    ("unknown stage", "/v1/scan", {"text": "hi", "stage": MARK}, (400,)),
    ("unknown field", "/v1/scan", {"text": "hi", f"<{MARK}>": 1}, (400,)),  # not a plain name: not named
    ("messages a string", "/v1/chat/completions", {"messages": MARK}, (400,)),
    ("no messages", "/v1/chat/completions", {"messages": []}, (400,)),
    ("unknown role", "/v1/chat/completions", {"messages": [{"role": MARK, "content": "hi"}]}, (400,)),
    ("content a number", "/v1/chat/completions", _chat(42), (400,)),
    ("max_tokens a string", "/v1/chat/completions", _chat("hi", max_tokens="ten"), (400,)),
    ("max_tokens negative", "/v1/chat/completions", _chat("hi", max_tokens=-1), (400,)),
    ("max_tokens zero", "/v1/chat/completions", _chat("hi", max_tokens=0), (400,)),
    ("max_tokens huge", "/v1/chat/completions", _chat("hi", max_tokens=10**30), (400,)),
    ("max_tokens over the limit", "/v1/chat/completions", _chat("hi", max_tokens=10**6), (400,)),
    ("temperature out of range", "/v1/chat/completions", _chat("hi", temperature=3), (400,)),
    ("top_p zero", "/v1/chat/completions", _chat("hi", top_p=0), (400,)),
    ("n two", "/v1/chat/completions", _chat("hi", n=2), (400,)),
    ("stop list too long", "/v1/chat/completions", _chat("hi", stop=["a", "b", "c", "d", "e"]), (400,)),
    ("unknown model", "/v1/chat/completions", _chat("hi", model=MARK), (404,)),
    ("image part", "/v1/chat/completions", _chat([{"type": "image_url", "image_url": {"url": MARK}}]), (400,)),
    ("completion prompt list of two", "/v1/completions", {"prompt": [MARK, MARK], "max_tokens": 4}, (400,)),
    ("many messages", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}] * 300}, (400,)),
    ("prompt beyond the context", "/v1/chat/completions", _chat("word " * 5000), (400,)),
    ("input over max_input_chars", "/v1/scan", {"text": "a" * 40_000}, (400,)),
    ("chat over max_input_chars", "/v1/chat/completions", _chat("a " * 20_000), (400,)),
    (
        "tools",
        "/v1/chat/completions",
        _chat("hi", tools=[{"type": "function", "function": {"name": f"<{MARK}>"}}]),
        (400,),
    ),
    (
        "response_format",
        "/v1/chat/completions",
        _chat("hi", response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": MARK}}}),
        (400,),
    ),
    (
        "tool message naming a bad tool",
        "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "r", "name": f"<{MARK}>"}],
        },
        (400,),
    ),
]

# (id, route, body, the param the 400 names): the field at fault, never its value.
NAMED: list[tuple[str, str, Any, str]] = [
    ("unknown top-level field", "/v1/chat/completions", _chat("hi", temperture=0.5), "temperture"),
    (
        "unknown nested field",
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "hi", "x_y": 1}]},
        "messages.0.x_y",
    ),
    ("wrong type", "/v1/chat/completions", _chat("hi", max_tokens="ten"), "max_tokens"),
    ("unknown role", "/v1/chat/completions", {"messages": [{"role": MARK, "content": "hi"}]}, "messages.0.role"),
    ("max_tokens over the limit", "/v1/chat/completions", _chat("hi", max_tokens=10**6), "max_tokens"),
    ("chat over max_input_chars", "/v1/chat/completions", _chat("a " * 20_000), "messages"),
    ("completion over max_input_chars", "/v1/completions", {"prompt": "a " * 20_000}, "prompt"),
    ("scan over max_input_chars", "/v1/scan", {"text": "a" * 40_000}, "text"),
    (
        "tools",
        "/v1/chat/completions",
        _chat("hi", tools=[{"type": "function", "function": {"name": f"<{MARK}>"}}]),
        "tools.0.function.name",
    ),
    ("tool_choice", "/v1/chat/completions", _chat("hi", tool_choice="required"), "tool_choice"),
    (
        "response_format",
        "/v1/chat/completions",
        _chat("hi", response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": MARK}}}),
        "response_format.json_schema.schema",
    ),
    ("presence_penalty", "/v1/chat/completions", _chat("hi", presence_penalty=1.0), "presence_penalty"),
    ("logit_bias", "/v1/chat/completions", _chat("hi", logit_bias={"5": 10}), "logit_bias"),
    ("top_logprobs without logprobs", "/v1/chat/completions", _chat("hi", top_logprobs=2), "top_logprobs"),
    ("top_logprobs over 20", "/v1/chat/completions", _chat("hi", logprobs=True, top_logprobs=21), "top_logprobs"),
    ("n two", "/v1/chat/completions", _chat("hi", n=2), "n"),
    (
        "image part",
        "/v1/chat/completions",
        _chat([{"type": "image_url", "image_url": {"url": "u"}}]),
        "messages.0.content.0.type",
    ),
    ("no content", "/v1/chat/completions", {"messages": [{"role": "user", "content": None}]}, "messages.0.content"),
    ("suffix", "/v1/completions", {"prompt": "a", "suffix": "b"}, "suffix"),
    ("echo with logprobs", "/v1/completions", {"prompt": "a", "echo": True, "logprobs": 1}, "echo"),
    ("prompt beyond the context", "/v1/chat/completions", _chat("word " * 5000), "messages"),
]


@pytest.mark.parametrize(("route", "body", "param"), [case[1:] for case in NAMED], ids=[c[0] for c in NAMED])
async def test_refusals_name_the_parameter(client: AsyncTestClient[Any], route: str, body: Any, param: str) -> None:
    response = await client.post(route, json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    error = assert_error_shape(response)
    assert error["param"] == param, error
    assert error["type"] == "invalid_request_error"
    assert MARK not in response.text


@pytest.mark.parametrize(
    ("route", "body", "statuses"), [case[1:] for case in JSON_BODIES], ids=[c[0] for c in JSON_BODIES]
)
async def test_wrong_types_and_bounds(
    client: AsyncTestClient[Any], route: str, body: Any, statuses: tuple[int, ...]
) -> None:
    assert_clean(await client.post(route, json=body, headers=AUTH), *statuses)


async def test_prompt_beyond_the_context_says_so(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/v1/chat/completions", json=_chat("word " * 5000), headers=AUTH)
    assert_clean(response, 400)
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    # OpenAI's wording: what LiteLLM (ContextWindowExceededError) and other client libraries match.
    assert error["message"].startswith("This model's maximum context length is 1024 tokens. However, you requested")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", f"text={MARK}"),
        ("application/x-www-form-urlencoded", f"text={MARK}"),
        (
            "multipart/form-data; boundary=xyz",
            f'--xyz\r\nContent-Disposition: form-data; name="text"\r\n\r\n{MARK}\r\n--xyz--',
        ),
        ("application/xml", f"<text>{MARK}</text>"),
    ],
)
async def test_wrong_content_types(client: AsyncTestClient[Any], content_type: str, body: str) -> None:
    response = await client.post("/v1/scan", content=body.encode(), headers={**AUTH, "Content-Type": content_type})
    assert_clean(response, 400, 415)


async def test_duplicate_keys_take_the_last_value(client: AsyncTestClient[Any]) -> None:
    body = b'{"text": "first", "text": "second ' + MARK.encode() + b'"}'
    response = await client.post("/v1/scan", content=body, headers=JSON_HEADERS)
    assert_clean(response, 200)
    assert response.json()["redacted_text"] == f"second {MARK}"  # the answer to the text that was checked


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \n"])
async def test_empty_and_whitespace_prompts(client: AsyncTestClient[Any], text: str) -> None:
    """Nothing to check or answer is still a valid request: scanned as allowed; a chat gets a (short) answer. Both are
    audited like any other decision."""
    scanned = await client.post("/v1/scan", json={"text": text}, headers=AUTH)
    assert_clean(scanned, 200)
    assert scanned.json()["decision"] == "allow"
    assert_clean(await client.post("/v1/chat/completions", json=_chat(text), headers=AUTH), 200)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "default/../strict", "/etc/passwd", "default\x00", MARK]
)
async def test_path_traversal_in_policy_names(client: AsyncTestClient[Any], name: str) -> None:
    assert_clean(await client.post("/v1/scan", json={"text": "hi", "policy": name}, headers=AUTH), 404)
    headers = {**AUTH, "X-Guard-Policy": name.replace("\x00", "\\0")}  # a header cannot carry NUL
    assert_clean(await client.post("/v1/chat/completions", json=_chat("hi"), headers=headers), 404)
    safe = name.replace("\x00", "%00").replace("/", "%2F")
    assert_clean(await client.get(f"/v1/policies/{safe}", headers=AUTH), 404)


async def test_nul_and_lone_surrogates_are_stored_cleanly(client: AsyncTestClient[Any], database_url: str) -> None:
    """PostgreSQL rejects NUL in text and lone surrogates anywhere. NUL arrives in valid JSON and is replaced
    (U+FFFD) before storing; JSON with a lone surrogate escape is refused at the door (400), and the writer cleans
    any that reach it by another way."""
    body = ('{"text": "nul \\u0000 in the middle ' + MARK + '"}').encode()
    response = await client.post("/v1/scan", content=body, headers=JSON_HEADERS)
    assert_clean(response, 200)
    chat = b'{"messages": [{"role": "user", "content": "a\\u0000b"}], "max_tokens": 3}'
    chatted = await client.post("/v1/chat/completions", content=chat, headers=JSON_HEADERS)
    assert_clean(chatted, 200)
    for surrogate in ("\\ud800", "\\udfff", "\\udc80x"):
        refused = await client.post(
            "/v1/scan", content=f'{{"text": "{surrogate} {MARK}"}}'.encode(), headers=JSON_HEADERS
        )
        assert_clean(refused, 400)

    engine = create_engine(database_url)
    writer = AuditWriter(engine)
    record = AuditRecord(
        decision_id=str(uuid.uuid4()),
        created_at=datetime.now(UTC),
        route="/v1/scan",
        outcome="ok",
        http_status=200,
        decision="allow",
        input_redacted=[{"role": "input", "content": "lone \udc80 and \ud800 surrogates, nul \x00"}],
    )
    try:
        await writer.write(record)
    finally:
        await writer.aclose()
        await engine.dispose()

    rows = {r["decision_id"]: r for r in await audit_rows(database_url)}
    scanned = rows[response.json()["decision_id"]]["input_redacted"][0]["content"]
    assert scanned == f"nul \ufffd in the middle {MARK}"
    assert rows[chatted.json()["guard"]["decision_id"]]["input_redacted"][0]["content"] == "a\ufffdb"
    stored = rows[record.decision_id]["input_redacted"][0]["content"]
    assert stored == "lone \ufffd and \ufffd surrogates, nul \ufffd"
    assert MARK not in json.dumps([r for r in rows.values() if r["outcome"] == "rejected"], default=str)


@pytest.fixture
async def sqlite_client(guard_home: Path, tmp_path: Path, models: Models) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'guard.db'}"
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    async with AsyncTestClient(app=create_app(dev_settings(guard_home, url), models=models)) as test_client:
        yield test_client


async def test_naughty_strings_scanned_in_both_stages(sqlite_client: AsyncTestClient[Any]) -> None:
    assert len(NAUGHTY) > 400
    statuses: dict[int, int] = {}
    for text in NAUGHTY:
        for stage in ("input", "output"):
            response = await sqlite_client.post("/v1/scan", json={"text": text, "stage": stage}, headers=AUTH)
            assert_clean(response)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert statuses.get(200, 0) >= 2 * len(NAUGHTY) - 10, statuses  # they are text: almost all simply get scanned


async def test_naughty_strings_as_chat_prompts(sqlite_client: AsyncTestClient[Any]) -> None:
    for text in NAUGHTY[::8]:
        assert_clean(await sqlite_client.post("/v1/chat/completions", json=_chat(text, max_tokens=2), headers=AUTH))
        assert_clean(await sqlite_client.post("/v1/completions", json={"prompt": text, "max_tokens": 2}, headers=AUTH))
