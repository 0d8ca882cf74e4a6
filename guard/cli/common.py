"""What every ``guard`` subcommand shares: settings from the environment and a stderr console for errors."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console

from guard.settings import Settings

__all__ = ["err", "fail", "settings"]

err = Console(stderr=True)


def settings(profile: str | None = None) -> Settings:
    return Settings.from_env(profile=profile)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` in red on stderr and exit with ``code`` (2: the input was invalid)."""
    err.print(f"[bold red]guard: {message}[/]", highlight=False, soft_wrap=True)
    sys.exit(code)
