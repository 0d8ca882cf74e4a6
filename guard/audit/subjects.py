"""Keyed digests of detected identifiers, so a reviewer can find one person's records without storing them.

The HMAC key lives outside the database (``GUARD_AUDIT_HMAC_KEY``, read by :mod:`guard.settings`, or a 0600 file in
``GUARD_HOME``). The file may hold several keys, one ``ID:HEX`` a line, oldest first (a bare ``HEX`` line is key
``k1``): new digests use the newest, lookups (``guard audit subject``) use them all, so rotating the key
(:func:`add_key`, ``guard audit rotate-hmac-key``) loses no one's records. A key from the settings is the newest.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SubjectHasher", "add_key", "load_keyring", "load_or_create_key"]


def _parse(text: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for number, line in enumerate((line.strip() for line in text.splitlines() if line.strip()), start=1):
        key_id, _, hex_key = line.rpartition(":")
        keys[key_id or f"k{number}"] = bytes.fromhex(hex_key)
    if not keys:
        raise ValueError("no key in the key file")
    return keys


def _write(path: Path, keys: Mapping[str, bytes]) -> None:
    """Write the key file whole (a new file moved into place, mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write("".join(f"{key_id}:{key.hex()}\n" for key_id, key in keys.items()))
    os.replace(staged, path)


def load_keyring(path: Path, configured: bytes | None = None) -> dict[str, bytes]:
    """The keys of ``path`` by id, oldest first, with ``configured`` (from the settings) as the newest; a new random
    key is written to ``path`` (mode 0600) when there is neither."""
    keys = _parse(path.read_text(encoding="ascii")) if path.is_file() else {}
    if configured is not None:
        if configured not in keys.values():
            keys["settings"] = configured
        return keys
    if not keys:
        keys = {"k1": secrets.token_bytes(32)}
        _write(path, keys)
    return keys


def load_or_create_key(path: Path, configured: bytes | None = None) -> bytes:
    """The newest key of :func:`load_keyring`."""
    if configured is not None:
        return configured
    return list(load_keyring(path).values())[-1]


def add_key(path: Path) -> str:
    """Append a new random key to the key file (created if missing); its id. Old keys stay for lookups."""
    keys = load_keyring(path) if path.is_file() else {}
    key_id = f"k{len(keys) + 1}"
    while key_id in keys:
        key_id += "x"
    keys[key_id] = secrets.token_bytes(32)
    _write(path, keys)
    return key_id


class SubjectHasher:
    """Keyed digests: ``digest`` with the newest key (what is recorded), ``digests`` with every key (lookups)."""

    def __init__(self, key: bytes | Mapping[str, bytes]) -> None:
        self._keys = dict(key) if isinstance(key, Mapping) else {"k1": key}
        if not self._keys:
            raise ValueError("SubjectHasher needs a key")
        self.key_id, self._key = list(self._keys.items())[-1]

    @staticmethod
    def _hmac(key: bytes, entity: str, value: str) -> str:
        normalised = " ".join(value.casefold().split())
        return hmac.new(key, f"{entity}:{normalised}".encode(), hashlib.sha256).hexdigest()

    def digest(self, entity: str, value: str) -> str:
        return self._hmac(self._key, entity, value)

    def digests(self, entity: str, value: str) -> list[str]:
        """The digest under every key, oldest key first (records made before a rotation hold an older one)."""
        return [self._hmac(key, entity, value) for key in self._keys.values()]
