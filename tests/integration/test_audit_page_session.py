"""The reviewer page's sign-in session against the real app and database (SQLite file and PostgreSQL): the form,
wrong keys, cookie flags, the session-authenticated JSON, sign-out, revocation, CSRF and tenant scope."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine

from guard.api.web.session import SESSION_COOKIE
from guard.devmodels import TOXIC_TRIGGER_WORD
from guard.store.api_keys import create_api_key, list_api_keys, revoke_api_key
from tests.integration.conftest import API_KEY, AUTH

pytestmark = pytest.mark.integration

HEADERS = {"x-frame-options": "DENY", "referrer-policy": "no-referrer"}


async def _keys(database_url: str) -> dict[str, str]:
    engine = create_async_engine(database_url)
    try:
        keys = {}
        for name, scopes, tenant in (
            ("reader", ["audit:read"], None),
            ("scanner", ["scan"], None),
            ("acme-reader", ["audit:read"], "acme"),
            ("acme-scanner", ["scan"], "acme"),
        ):
            keys[name], _ = await create_api_key(engine, name=name, scopes=scopes, tenant=tenant)
    finally:
        await engine.dispose()
    return keys


async def _scan(client: AsyncTestClient[Any], text: str, key: str = API_KEY, stage: str = "input") -> str:
    response = await client.post(
        "/v1/scan", json={"text": text, "stage": stage}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["decision_id"])


async def _sign_in(client: AsyncTestClient[Any], key: str, url: str = "/audit/session") -> Any:
    return await client.post(url, data={"key": key}, follow_redirects=False)


def _assert_secured(response: Any) -> None:
    for name, value in HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["content-security-policy"].startswith("default-src 'self'")


async def test_sign_in_cookie_api_and_sign_out(client: AsyncTestClient[Any], database_url: str) -> None:
    keys = await _keys(database_url)
    toxic = await _scan(client, f"You are a {TOXIC_TRIGGER_WORD} and a {TOXIC_TRIGGER_WORD}.", stage="output")

    form = await client.get("/audit")
    assert form.status_code == 200
    assert 'action="/audit/session"' in form.text
    assert "set-cookie" not in form.headers  # anonymous visits get no session
    _assert_secured(form)
    assert (await client.get("/audit/api/decisions")).status_code == 401  # no cookie, no data
    assert (await client.get("/audit/api/decisions", headers=AUTH)).status_code == 401  # a bearer key is not a session

    wrong = "gk-wrong-" + "x" * 24
    refused = await _sign_in(client, wrong)
    assert refused.status_code == 401
    assert 'action="/audit/session"' in refused.text
    assert "not accepted" in refused.text
    assert wrong not in refused.text
    assert "set-cookie" not in refused.headers
    lacking = await _sign_in(client, keys["scanner"])
    assert lacking.status_code == 403
    assert "audit:read" in lacking.text
    assert "set-cookie" not in lacking.headers

    signed = await _sign_in(client, keys["reader"])
    assert signed.status_code == 303, signed.text
    assert signed.headers["location"] == "/audit"
    raw = signed.headers["set-cookie"]
    flags = {part.strip().lower() for part in raw.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # plain http here; see the https test
    cookie = SimpleCookie(raw)[SESSION_COOKIE].value
    assert len(cookie) >= 64
    assert keys["reader"] not in raw
    assert keys["reader"] not in signed.headers["location"]

    page = await client.get("/audit")
    assert page.status_code == 200
    assert '<script src="/audit/static/audit.js"' in page.text
    assert keys["reader"] not in page.text
    _assert_secured(page)
    script = await client.get("/audit/static/audit.js")
    assert script.status_code == 200
    assert "innerHTML" not in script.text.replace("never innerHTML", "")
    _assert_secured(script)

    listed = await client.get("/audit/api/decisions", params={"decision": "block", "check": "toxicity"})
    assert listed.status_code == 200, listed.text
    assert [item["decision_id"] for item in listed.json()["items"]] == [toxic]
    detail = await client.get(f"/audit/api/decisions/{toxic}")
    assert detail.status_code == 200
    assert detail.json()["explanation"][0]["check"] == "toxicity"
    stats = (await client.get("/audit/api/stats")).json()
    assert any(c["decision"] == "block" for c in stats["by_decision"])
    assert any(c["category"].startswith("toxicity:") for c in stats["by_category"])
    bad = await client.get("/audit/api/decisions", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400
    assert set(bad.json()["error"]) == {"message", "type", "param", "code"}

    # A cross-site form post is refused (SameSite=Strict aside, the Origin must be this host).
    evil = await client.post("/audit/logout", headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert evil.status_code == 403
    assert (await client.get("/audit/api/stats")).status_code == 200

    out = await client.post("/audit/logout", follow_redirects=False)
    assert out.status_code == 303
    assert "max-age=0" in out.headers["set-cookie"].lower()
    # The session is gone server-side: replaying the old cookie value gets nothing.
    client.cookies.set(SESSION_COOKIE, cookie)
    assert (await client.get("/audit/api/decisions")).status_code == 401
    assert 'action="/audit/session"' in (await client.get("/audit")).text


async def test_https_cookie_is_secure_and_revocation_ends_the_session(
    client: AsyncTestClient[Any], database_url: str
) -> None:
    keys = await _keys(database_url)
    signed = await _sign_in(client, keys["reader"], url="https://testserver.local/audit/session")
    assert signed.status_code == 303, signed.text
    assert "secure" in {part.strip().lower() for part in signed.headers["set-cookie"].split(";")}

    client.cookies.clear()
    assert (await _sign_in(client, keys["reader"])).status_code == 303
    assert (await client.get("/audit/api/decisions")).status_code == 200
    engine = create_async_engine(database_url)
    try:
        (reader_id,) = [k.key_id for k in await list_api_keys(engine) if k.name == "reader"]
        assert await revoke_api_key(engine, reader_id, actor="test")
    finally:
        await engine.dispose()
    assert (await client.get("/audit/api/decisions")).status_code == 401


async def test_tenant_session_sees_only_its_tenant(client: AsyncTestClient[Any], database_url: str) -> None:
    keys = await _keys(database_url)
    other = await _scan(client, "The weekly meeting is on Thursday at ten.")
    mine = await _scan(client, "Mail k.tanaka@example.net today.", key=keys["acme-scanner"])

    assert (await _sign_in(client, keys["acme-reader"])).status_code == 303
    listed = (await client.get("/audit/api/decisions", params={"limit": 200})).json()["items"]
    assert {item["decision_id"] for item in listed} == {mine}
    assert {item["tenant"] for item in listed} == {"acme"}
    assert (await client.get(f"/audit/api/decisions/{other}")).status_code == 404
    assert (await client.get(f"/audit/api/decisions/{mine}")).status_code == 200
    stats = (await client.get("/audit/api/stats")).json()
    assert sum(c["count"] for c in stats["by_decision"]) == 1
