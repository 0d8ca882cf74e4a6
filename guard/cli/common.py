"""What every ``guard`` subcommand shares: settings from the environment and a stderr console for errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.settings import Settings

__all__ = ["err", "fail", "run_db", "settings"]

T = TypeVar("T")

err = Console(stderr=True)


def settings(profile: str | None = None) -> Settings:
    return Settings.from_env(profile=profile)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` in red on stderr and exit with ``code`` (2: the input was invalid)."""
    err.print(f"[bold red]guard: {message}[/]", highlight=False, soft_wrap=True)
    sys.exit(code)


def run_db(action: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``action`` on the database engine, failing with a hint when the table is missing or unreachable."""
    from guard.audit import create_engine

    async def go() -> T:
        engine = create_engine(settings().database.url)
        try:
            return await action(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except (SQLAlchemyError, OSError) as exc:
        fail(f"database error ({type(exc).__name__}): is it reachable and migrated (`guard db upgrade`)?", code=1)
