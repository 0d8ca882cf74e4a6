"""Policy reload on every replica: each polls its policy directory's content digest and reloads when it changes.

Replicas share no process, so ``POST /v1/policies/reload`` or SIGHUP reaches one of them; with
``GUARD_POLICY_POLL_S`` > 0 every replica notices a changed directory (a shared volume, or a deploy that syncs it)
within that many seconds and reloads through the same :class:`PolicyReloader`, which refuses an invalid set.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Protocol

__all__ = ["directory_digest", "poll_policies"]

logger = logging.getLogger(__name__)


class _Reloader(Protocol):
    directory: Path

    async def reload_logged(self, trigger: str) -> object: ...


def directory_digest(directory: Path) -> str:
    """SHA-256 over the names and bytes of the directory's policy files, in name order."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.y*ml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


async def poll_policies(reloader: _Reloader, interval_s: float) -> None:
    """Reload whenever the directory's digest changes; runs until cancelled. A refused reload keeps the old set
    and is not retried until the files change again."""
    seen = await asyncio.to_thread(directory_digest, reloader.directory)
    while True:
        await asyncio.sleep(interval_s)
        try:
            current = await asyncio.to_thread(directory_digest, reloader.directory)
        except OSError as exc:
            logger.warning("policy poll could not read the policy directory: %s", type(exc).__name__)
            continue
        if current != seen:
            seen = current
            await reloader.reload_logged("poll")
