"""The outside services some tests need (PostgreSQL, Redis, Chromium) and the one rule for a missing one.

A test whose service is missing skips on a developer's machine and FAILS under ``CI=true``, so CI cannot silently
lose the PostgreSQL, Redis or browser tests. A PostgreSQL URL that is set but does not answer fails everywhere, as
it always has: the run asked for that server.

- PostgreSQL: ``GUARD_TEST_POSTGRES_URL`` (no default; .ci/run sets it).
- Redis: ``GUARD_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``.
- Chromium: ``GUARD_TEST_CHROMIUM``, default ``/usr/bin/chromium`` (Debian's, driven by playwright-python).
- LiteLLM: ``GUARD_TEST_LITELLM_PYTHON``, default ``.venv-litellm/bin/python`` (its own virtualenv, made by .ci/run;
  used by tests/e2e/test_openai_clients.py).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

__all__ = ["chromium_path", "in_ci", "postgres_url", "redis_url", "require_service"]

POSTGRES_ENV = "GUARD_TEST_POSTGRES_URL"
REDIS_ENV = "GUARD_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CHROMIUM_ENV = "GUARD_TEST_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"


def in_ci() -> bool:
    """``CI`` is set to a true value (``true``, ``1``, ``yes``), as CI systems do."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_service(name: str, reason: str, *, requested: bool = False) -> NoReturn:
    """End a test whose service is missing: a failure under ``CI=true`` or when the run asked for that very
    server (``requested``), a skip otherwise."""
    message = f"{name} is missing: {reason}"
    if in_ci() or requested:
        why = "CI=true" if in_ci() else "it was asked for"
        pytest.fail(f"{message} ({why}: a missing service fails the test instead of skipping it)", pytrace=False)
    pytest.skip(message)


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1.0).close()
    except OSError:
        return False
    return True


def postgres_url() -> str:
    """The PostgreSQL server of ``GUARD_TEST_POSTGRES_URL``, once something answers at its address."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        require_service("PostgreSQL", f"{POSTGRES_ENV} is not set")
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 5432
    if host and not _answers(host, port):
        require_service("PostgreSQL", f"nothing answers at {host}:{port} ({POSTGRES_ENV})", requested=True)
    return url


def redis_url() -> str:
    """The Redis server of ``GUARD_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), once it answers."""
    url = os.environ.get(REDIS_ENV) or DEFAULT_REDIS_URL
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if not _answers(host, port):
        require_service("Redis", f"nothing answers at {host}:{port} ({REDIS_ENV})")
    return url


def chromium_path() -> Path:
    """The Chromium binary of ``GUARD_TEST_CHROMIUM`` (default Debian's ``/usr/bin/chromium``), once it exists."""
    path = Path(os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM)
    if not path.is_file():
        require_service("Chromium", f"{path} does not exist ({CHROMIUM_ENV})")
    return path
