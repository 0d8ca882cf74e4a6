"""Keyed digests of detected identifiers, so a reviewer can find one person's records without storing them.

The HMAC key lives outside the database (``GUARD_AUDIT_HMAC_KEY``, read by :mod:`guard.settings`, or a 0600 file in
``GUARD_HOME``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["SubjectHasher", "load_or_create_key"]


def load_or_create_key(path: Path, configured: bytes | None = None) -> bytes:
    """``configured`` (a key from the settings), else the hex key in ``path``, else a new random key written there
    (mode 0600)."""
    if configured is not None:
        return configured
    if path.is_file():
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.hex())
    return key


class SubjectHasher:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def digest(self, entity: str, value: str) -> str:
        normalised = " ".join(value.casefold().split())
        return hmac.new(self._key, f"{entity}:{normalised}".encode(), hashlib.sha256).hexdigest()
