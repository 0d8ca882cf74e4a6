"""``guard keys create|list|revoke``: scoped API keys in the database at GUARD_DATABASE_URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.cli.common import fail, run_db

if TYPE_CHECKING:
    from guard.audit.admin_events import AdminEvent, BrokenLink

__all__ = ["keys"]


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@click.group()
def keys() -> None:
    """Scoped API keys (scopes: generate, scan, audit:read, policy:admin)."""


@keys.command("create")
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option("--scopes", required=True, help="Comma-separated: generate,scan,audit:read,policy:admin.")
@click.option("--policy", help="The policy the key's requests use by default.")
@click.option("--allow-policy", "allowed", multiple=True, help="Another policy X-Guard-Policy may name (repeatable).")
@click.option("--rate", help="Rate limit, like 60/minute: per key, fixed window, shared by all replicas; over it: 429.")
@click.option("--tenant", help="Tenant recorded on the key's audit rows.")
def keys_create(
    name: str, scopes: str, policy: str | None, allowed: tuple[str, ...], rate: str | None, tenant: str | None
) -> None:
    """Create a key and print it once: only its sha256 digest is stored, so it cannot be shown again."""
    from guard.store.api_keys import InvalidApiKeySpec, create_api_key

    try:
        key, record = run_db(
            lambda engine: create_api_key(
                engine,
                name=name,
                scopes=_split((scopes,)),
                policy=policy,
                allowed_policies=_split(allowed),
                rate=rate,
                tenant=tenant,
            )
        )
    except InvalidApiKeySpec as exc:
        fail(str(exc))
    click.echo(f"key_id: {record.key_id}")
    click.echo(f"key:    {key}")
    click.echo("Store the key now: it is not kept and cannot be shown again.", err=True)


@keys.command("list")
def keys_list() -> None:
    """The keys (never the key itself): id, name, scopes, policies, rate, tenant, created, revoked."""
    from guard.store.api_keys import list_api_keys

    table = Table("key_id", "name", "scopes", "policy", "allowed", "rate", "tenant", "created", "revoked")
    for item in run_db(list_api_keys):
        table.add_row(
            item.key_id,
            item.name,
            ",".join(item.scopes),
            item.policy or "",
            ",".join(item.allowed_policies),
            item.rate or "",
            item.tenant or "",
            f"{item.created_at:%Y-%m-%d %H:%M}" if item.created_at else "",
            f"{item.revoked_at:%Y-%m-%d %H:%M}" if item.revoked_at else "",
        )
    Console(width=200).print(table)


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    from guard.store.api_keys import revoke_api_key

    if not run_db(lambda engine: revoke_api_key(engine, key_id)):
        fail(f"no live key with id {key_id}", code=1)
    click.echo(f"revoked {key_id}")


@keys.command("log")
def keys_log() -> None:
    """The admin events (keys created and revoked, by whom) and whether their hash chain is intact (exit 1 if not)."""
    from guard.audit.admin_events import list_admin_events, verify_admin_events

    async def read(engine: AsyncEngine) -> tuple[list[AdminEvent], tuple[int, BrokenLink | None]]:
        return await list_admin_events(engine), await verify_admin_events(engine)

    events, (checked, broken) = run_db(read)
    table = Table("id", "time", "actor", "action", "key_id", "details")
    for event in events:
        details = ", ".join(f"{k}={v}" for k, v in event.details.items() if v not in (None, [], ""))
        table.add_row(
            str(event.id),
            f"{event.created_at:%Y-%m-%d %H:%M:%S}",
            event.actor,
            event.action,
            event.subject or "",
            details,
        )
    Console(width=200).print(table)
    if broken is not None:
        fail(f"admin event chain broken at event {broken.id}: {broken.reason}", code=1)
    click.echo(f"admin event chain intact ({checked} events)")
