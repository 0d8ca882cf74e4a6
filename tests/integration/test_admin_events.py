"""Key changes go to the hash-chained admin_events table; `guard keys log` shows them and detects tampering."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from guard.audit.admin_events import list_admin_events, verify_admin_events
from guard.cli import main
from guard.store.api_keys import create_api_key, revoke_api_key

pytestmark = pytest.mark.integration


async def _three_changes(url: str) -> tuple[str, str]:
    engine = create_async_engine(url)
    try:
        key, first = await create_api_key(engine, name="backend", scopes=["generate"], rate="5/minute", actor="ops")
        _, second = await create_api_key(engine, name="reviewer", scopes=["audit:read"], tenant="acme")
        assert await revoke_api_key(engine, first.key_id, actor="ops")
        assert not await revoke_api_key(engine, first.key_id)  # nothing changed, nothing recorded
    finally:
        await engine.dispose()
    return key, second.key_id


async def _execute(url: str, statement: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def _verify(url: str) -> tuple[int, int | None]:
    engine = create_async_engine(url)
    try:
        checked, broken = await verify_admin_events(engine)
    finally:
        await engine.dispose()
    return checked, broken.id if broken else None


async def test_key_changes_are_recorded_and_chained(database_url: str) -> None:
    key, reviewer_id = await _three_changes(database_url)
    engine = create_async_engine(database_url)
    try:
        events = await list_admin_events(engine)
    finally:
        await engine.dispose()
    assert [(e.action, e.actor) for e in events] == [
        ("key.create", "ops"),
        ("key.create", events[1].actor),
        ("key.revoke", "ops"),
    ]
    assert events[1].actor.startswith("os:")  # no actor given: the OS user running the process
    assert events[1].subject == reviewer_id
    assert (events[0].details["scopes"], events[0].details["rate"]) == (["generate"], "5/minute")
    assert events[1].details["tenant"] == "acme"
    assert key.removeprefix("gk-")[:16] not in json.dumps([e.details for e in events])  # never the key
    assert await _verify(database_url) == (3, None)


@pytest.mark.parametrize(
    ("tamper", "broken_id"),
    [
        ("UPDATE admin_events SET details = '{}' WHERE id = 2", 2),  # an edit
        ("UPDATE admin_events SET actor = 'someone else' WHERE id = 1", 1),
        ("DELETE FROM admin_events WHERE id = 2", 3),  # a deletion breaks the next link
    ],
)
async def test_tampering_is_detected(database_url: str, tamper: str, broken_id: int) -> None:
    await _three_changes(database_url)
    await _execute(database_url, tamper)
    assert (await _verify(database_url))[1] == broken_id


def test_keys_log_cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARD_DATABASE_URL", database_url)
    runner = CliRunner()
    created = runner.invoke(main, ["keys", "create", "--name", "svc", "--scopes", "scan"])
    assert created.exit_code == 0, created.output
    key_id = created.output.split("key_id:")[1].split()[0]
    assert runner.invoke(main, ["keys", "revoke", key_id]).exit_code == 0
    result = runner.invoke(main, ["keys", "log"])
    assert result.exit_code == 0, result.output
    for expected in ("key.create", "key.revoke", key_id):
        assert expected in result.output
    assert "chain intact (2 events)" in result.output

    asyncio.run(_execute(database_url, "UPDATE admin_events SET action = 'key.rotate' WHERE id = 2"))
    result = runner.invoke(main, ["keys", "log"])
    assert result.exit_code == 1
    assert "broken at event 2" in result.output
