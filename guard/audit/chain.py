"""The canonical hash forms that writers seal and verifiers recompute (one module, so they cannot drift).

Decision rows: a row's ``content_digest = sha256(canonical JSON of its content fields)`` and its
``row_hash = sha256(prev_hash || canonical JSON of its header)``; the header holds the content digest, so an erasure
that blanks the content leaves every row hash (and so the chain) valid, while any other edit breaks it.
Canonical JSON sorts keys and has no spaces, so it is the same after a round trip through SQLite JSON or
PostgreSQL JSONB (which reorders keys); ``created_at`` is ISO 8601 in UTC.

Admin events: ``row_hash = sha256(prev_hash || JSON of the event with sorted keys)`` (:func:`event_hash`).

The hash functions themselves live in :mod:`guard.audit.bundle_verify` (standard library only, so the offline bundle
verifier is one file) and are re-exported here.

Text is cleaned of NUL characters and lone surrogates (:func:`clean`) before it is hashed and stored, since
PostgreSQL rejects them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from guard.audit.bundle_verify import (
    CONTENT_FIELDS,
    GENESIS_HASH,
    HEADER_FIELDS,
    OPTIONAL_CONTENT_FIELDS,
    canonical,
    content_digest,
    event_hash,
    header_hash,
)

__all__ = [
    "CONTENT_FIELDS",
    "GENESIS_HASH",
    "HEADER_FIELDS",
    "OPTIONAL_CONTENT_FIELDS",
    "canonical",
    "clean",
    "content_digest",
    "event_hash",
    "header_hash",
    "seal",
]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def seal(content: Mapping[str, Any], *, chain_id: str, seq: int, prev_hash: str) -> dict[str, Any]:
    """``content`` as a row in position ``seq`` of ``chain_id`` after ``prev_hash``: digest and hashes filled in."""
    row = {**content, "chain_id": chain_id, "seq": seq, "prev_hash": prev_hash}
    row["content_digest"] = content_digest(row)
    row["row_hash"] = header_hash(prev_hash, row)
    return row


def clean(value: Any) -> Any:
    """Replace characters no database may store (NUL, lone surrogates) with U+FFFD, recursively."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [clean(item) for item in value]
    if isinstance(value, dict):
        return {clean(key): clean(item) for key, item in value.items()}
    return value
