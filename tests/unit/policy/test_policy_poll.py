"""The policy poller reloads when the directory's content changes, and only then."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from guard.api.policy_poll import directory_digest, poll_policies

pytestmark = pytest.mark.unit


class _RecordingReloader:
    """Test double for PolicyReloader's reload entry point: records each trigger."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.triggers: list[str] = []

    async def reload_logged(self, trigger: str) -> None:
        self.triggers.append(trigger)


def test_digest_follows_content_not_mtime(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\n")
    first = directory_digest(tmp_path)
    (tmp_path / "a.yaml").write_text("name: a\n")
    (tmp_path / "notes.txt").write_text("ignored")
    assert directory_digest(tmp_path) == first
    (tmp_path / "b.yml").write_text("name: b\n")
    assert directory_digest(tmp_path) != first


async def test_poller_reloads_once_per_change(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\n")
    reloader = _RecordingReloader(tmp_path)
    task = asyncio.create_task(poll_policies(reloader, 0.02))
    try:
        await asyncio.sleep(0.1)
        assert reloader.triggers == []
        (tmp_path / "a.yaml").write_text("name: a2\n")
        await asyncio.sleep(0.15)
        assert reloader.triggers == ["poll"]
    finally:
        task.cancel()
