"""``guard db upgrade``: the audit database's Alembic migrations."""

from __future__ import annotations

import click

from guard.cli.common import settings as load_settings

__all__ = ["db"]


@click.group()
def db() -> None:
    """Audit database."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations to GUARD_DATABASE_URL."""
    from guard.audit.migrate import upgrade

    url = load_settings().database.url
    upgrade(url, revision)
    click.echo(f"database at revision {revision}: {url.split('@')[-1]}")
