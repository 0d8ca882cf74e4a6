"""Scoped API keys against the real app and database: 401/403 per route, revocation, policy binding, storage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from guard.cli import main
from guard.store.api_keys import create_api_key, key_digest, revoke_api_key
from tests.integration.conftest import AUTH
from tests.integration.dbdump import audit_rows

pytestmark = pytest.mark.integration

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


async def _key(database_url: str, *scopes: str, **options: Any) -> tuple[str, str]:
    engine = create_async_engine(database_url)
    try:
        key, record = await create_api_key(engine, name="test", scopes=scopes, **options)
    finally:
        await engine.dispose()
    return key, record.key_id


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}


async def test_no_key_or_unknown_key_is_401(client: AsyncTestClient[Any]) -> None:
    _assert_error(await client.post("/v1/scan", json={"text": "hi"}), 401, "unauthorized")
    _assert_error(
        await client.post("/v1/scan", json={"text": "hi"}, headers=_bearer("gk-not-a-key")), 401, "unauthorized"
    )


async def test_each_route_needs_its_scope(client: AsyncTestClient[Any], database_url: str) -> None:
    scan_key, _ = await _key(database_url, "scan")
    reader_key, _ = await _key(database_url, "audit:read")
    admin_key, _ = await _key(database_url, "policy:admin")

    # scan-only: may scan, may not generate, read the audit log or the policies
    response = await client.post("/v1/scan", json={"text": "hello there"}, headers=_bearer(scan_key))
    assert response.status_code == 200, response.text
    _assert_error(await client.post("/v1/chat/completions", json=CHAT, headers=_bearer(scan_key)), 403, "forbidden")
    _assert_error(await client.get("/v1/audit", headers=_bearer(scan_key)), 403, "forbidden")
    _assert_error(await client.get("/v1/policies", headers=_bearer(scan_key)), 403, "forbidden")

    # audit:read: reads the log and the policies, but may not reload them
    listed = await client.get("/v1/audit", headers=_bearer(reader_key))
    assert listed.status_code == 200, listed.text
    decision_id = response.json()["decision_id"]
    assert (await client.get(f"/v1/audit/{decision_id}", headers=_bearer(reader_key))).status_code == 200
    assert (await client.get("/v1/policies", headers=_bearer(reader_key))).status_code == 200
    _assert_error(await client.post("/v1/policies/reload", headers=_bearer(reader_key)), 403, "forbidden")
    _assert_error(await client.post("/v1/scan", json={"text": "x"}, headers=_bearer(reader_key)), 403, "forbidden")

    # policy:admin: reloads, but may not read the audit log
    reloaded = await client.post("/v1/policies/reload", headers=_bearer(admin_key))
    assert reloaded.status_code == 200, reloaded.text
    _assert_error(await client.get("/v1/audit", headers=_bearer(admin_key)), 403, "forbidden")


async def test_scoped_key_is_recorded_on_the_audit_row(client: AsyncTestClient[Any], database_url: str) -> None:
    key, key_id = await _key(database_url, "scan", tenant="acme")
    response = await client.post("/v1/scan", json={"text": "hello there"}, headers=_bearer(key))
    assert response.status_code == 200, response.text
    row = next(r for r in await audit_rows(database_url) if r["decision_id"] == response.json()["decision_id"])
    assert (row["key_id"], row["tenant"]) == (key_id, "acme")


async def test_revoked_key_is_401(client: AsyncTestClient[Any], database_url: str) -> None:
    key, key_id = await _key(database_url, "scan")
    assert (await client.post("/v1/scan", json={"text": "hi"}, headers=_bearer(key))).status_code == 200
    engine = create_async_engine(database_url)
    try:
        assert await revoke_api_key(engine, key_id)
        assert not await revoke_api_key(engine, key_id)  # already revoked
    finally:
        await engine.dispose()
    _assert_error(await client.post("/v1/scan", json={"text": "hi"}, headers=_bearer(key)), 401, "unauthorized")


async def test_policy_binding(client: AsyncTestClient[Any], database_url: str) -> None:
    bound, _ = await _key(database_url, "scan", "generate", policy="strict")
    allowed, _ = await _key(database_url, "scan", policy="default", allowed_policies=["strict"])

    # the bound policy is the default for the key's requests
    response = await client.post("/v1/scan", json={"text": "hello"}, headers=_bearer(bound))
    assert response.json()["policy"]["name"] == "strict"
    # naming another policy: 403 (body field of /v1/scan and the X-Guard-Policy header of generation)
    scan_default = {"text": "hello", "policy": "default"}
    _assert_error(await client.post("/v1/scan", json=scan_default, headers=_bearer(bound)), 403, "forbidden")
    headers = {**_bearer(bound), "X-Guard-Policy": "default"}
    _assert_error(await client.post("/v1/chat/completions", json=CHAT, headers=headers), 403, "forbidden")
    # both refusals are audited as rejected, with the key that asked
    bound_id = next(
        r["key_id"] for r in await audit_rows(database_url) if r["route"] == "/v1/scan" and r["http_status"] == 200
    )
    rejected = [r for r in await audit_rows(database_url) if r["outcome"] == "rejected" and r["http_status"] == 403]
    assert sorted(r["route"] for r in rejected) == ["/v1/chat/completions", "/v1/scan"]
    assert {r["key_id"] for r in rejected} == {bound_id}
    # a policy in allowed_policies may be named; the bootstrap key may name any
    response = await client.post("/v1/scan", json={"text": "hello", "policy": "strict"}, headers=_bearer(allowed))
    assert response.status_code == 200, response.text
    assert response.json()["policy"]["name"] == "strict"
    response = await client.post("/v1/scan", json={"text": "hello", "policy": "strict"}, headers=AUTH)
    assert response.json()["policy"]["name"] == "strict"


async def test_database_holds_only_the_digest(client: AsyncTestClient[Any], database_url: str) -> None:
    key, _ = await _key(database_url, "scan", "audit:read")
    assert (await client.post("/v1/scan", json={"text": "hi"}, headers=_bearer(key))).status_code == 200
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = [dict(row._mapping) for row in await connection.execute(text("SELECT * FROM api_keys"))]
    finally:
        await engine.dispose()
    dump = json.dumps(rows, default=str) + json.dumps(await audit_rows(database_url), default=str)
    secret = key.removeprefix("gk-")
    assert key_digest(key) in dump
    assert secret not in dump
    assert secret[:16] not in dump


def test_cli_create_list_revoke(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARD_DATABASE_URL", database_url)
    runner = CliRunner()
    created = runner.invoke(
        main,
        ["keys", "create", "--name", "ci", "--scopes", "generate,scan", "--policy", "strict", "--rate", "60/minute"],
    )
    assert created.exit_code == 0, created.output
    fields = dict(line.split(":", 1) for line in created.stdout.splitlines() if ":" in line)
    key_id, key = fields["key_id"].strip(), fields["key"].strip()
    assert key.startswith("gk-")
    assert len(key) > 40
    listed = runner.invoke(main, ["keys", "list"])
    assert listed.exit_code == 0
    assert key_id in listed.stdout
    assert key not in listed.stdout
    assert runner.invoke(main, ["keys", "revoke", key_id]).exit_code == 0
    assert runner.invoke(main, ["keys", "revoke", key_id]).exit_code == 1
    bad = runner.invoke(main, ["keys", "create", "--name", "x", "--scopes", "root"])
    assert bad.exit_code == 2


async def test_a_tenant_reviewer_reads_only_its_own_tenant(client: AsyncTestClient[Any], database_url: str) -> None:
    acme, _ = await _key(database_url, "scan", "audit:read", tenant="acme")
    globex, _ = await _key(database_url, "scan", "audit:read", tenant="globex")
    ids = {}
    for tenant, key in (("acme", acme), ("globex", globex)):
        response = await client.post("/v1/scan", json={"text": f"hello from {tenant}"}, headers=_bearer(key))
        assert response.status_code == 200, response.text
        ids[tenant] = response.json()["decision_id"]

    listed = (await client.get("/v1/audit", headers=_bearer(acme))).json()["items"]
    assert {row["tenant"] for row in listed} == {"acme"}
    assert ids["acme"] in {row["decision_id"] for row in listed}
    # another tenant's record reads as absent, even asked for by its id
    _assert_error(await client.get(f"/v1/audit/{ids['globex']}", headers=_bearer(acme)), 404, "not_found")
    assert (await client.get(f"/v1/audit/{ids['acme']}", headers=_bearer(acme))).status_code == 200
    # a key without a tenant (here the bootstrap key) sees every tenant
    everything = (await client.get("/v1/audit", headers=AUTH)).json()["items"]
    assert {"acme", "globex"} <= {row["tenant"] for row in everything}


async def test_refusals_are_audited_compactly(client: AsyncTestClient[Any], database_url: str) -> None:
    """401, 400 (validation), 413 (limits) and 404 (unknown policy) each leave one compact row: route template,
    status, key, no content — and nothing from the refused body."""
    marker = "zqx-refused-marker"
    refusals = [
        (await client.post("/v1/scan", json={"text": marker}), 401),
        (await client.post("/v1/scan", json={"text": marker, "bogus": 1}, headers=AUTH), 400),
        (await client.post("/v1/scan", json={"text": marker * 10_000}, headers=AUTH), 413),  # over the body limit
        (await client.post("/v1/scan", json={"text": marker, "policy": "nope"}, headers=AUTH), 404),
    ]
    assert [response.status_code for response, _ in refusals] == [status for _, status in refusals]
    rows = [r for r in await audit_rows(database_url) if r["outcome"] == "rejected"]
    assert sorted(r["http_status"] for r in rows) == [400, 401, 404, 413]
    assert {r["route"] for r in rows} == {"/v1/scan"}
    assert {r["key_id"] for r in rows if r["http_status"] != 401} == {"bootstrap"}
    assert all(r["decision"] == "block" and not r["input_redacted"] and not r["findings"] for r in rows)
    assert marker not in json.dumps(rows, default=str)
