"""The real app (dev models, real SQLite file or the PostgreSQL server) behind Litestar's test client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from guard.app import create_app
from guard.audit.migrate import upgrade
from guard.models import Models, load_models
from guard.settings import ApiSettings, DatabaseSettings, PolicySettings, Settings
from tests.conftest import POLICIES
from tests.services import postgres_url

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def dev_settings(home: Path, database_url: str, policy_dir: Path = POLICIES) -> Settings:
    base = Settings.from_env(profile="dev")
    return replace(
        base,
        home=home,
        database=DatabaseSettings(url=database_url),
        policy=PolicySettings(directory=policy_dir, default="default"),
        api=ApiSettings(api_key=API_KEY),
    )


@pytest.fixture(scope="session")
def models(guard_home: Path) -> Models:
    """Loaded once: the dev Gemma-2, the dev detoxify checkpoint and presidio on spaCy en_core_web_sm."""
    return load_models(dev_settings(guard_home, "sqlite+aiosqlite://"))


async def _reset_postgres(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "DROP TABLE IF EXISTS audit_decisions, policy_versions, api_keys, admin_events, rate_limit_windows,"
                " reviewer_sessions,"
                " alembic_version"
            )
        )
    await engine.dispose()


def _postgres_url() -> str:
    """The PostgreSQL server of GUARD_TEST_POSTGRES_URL with the guard tables dropped (skips without one; fails
    under CI=true, or when the variable names a server that does not answer: see tests/services.py)."""
    url = postgres_url()
    asyncio.run(_reset_postgres(url))
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database: a real SQLite file, or the PostgreSQL server named by GUARD_TEST_POSTGRES_URL."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'guard.db'}" if request.param == "sqlite" else _postgres_url()
    upgrade(url)
    return url


@pytest.fixture
async def client(guard_home: Path, database_url: str, models: Models) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(dev_settings(guard_home, database_url), models=models)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client
