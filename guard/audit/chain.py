"""The canonical hash forms that writers seal and verifiers recompute (one module, so they cannot drift).

Decision rows: a row's ``content_digest = sha256(canonical JSON of its content fields)`` and its
``row_hash = sha256(prev_hash || canonical JSON of its header)``; the header holds the content digest, so an erasure
that blanks the content leaves every row hash (and so the chain) valid, while any other edit breaks it.
Canonical JSON sorts keys and has no spaces, so it is the same after a round trip through SQLite JSON or
PostgreSQL JSONB (which reorders keys); ``created_at`` is ISO 8601 in UTC.

Admin events: ``row_hash = sha256(prev_hash || JSON of the event with sorted keys)`` (:func:`event_hash`).

Text is cleaned of NUL characters and lone surrogates (:func:`clean`) before it is hashed and stored, since
PostgreSQL rejects them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CONTENT_FIELDS",
    "GENESIS_HASH",
    "HEADER_FIELDS",
    "canonical",
    "clean",
    "content_digest",
    "event_hash",
    "header_hash",
    "seal",
]

GENESIS_HASH = "0" * 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

HEADER_FIELDS = (
    "chain_id",
    "seq",
    "decision_id",
    "created_at",
    "route",
    "kind",
    "parent_id",
    "outcome",
    "http_status",
    "decision",
    "key_id",
    "tenant",
    "policy_name",
    "policy_version",
    "policy_sha256",
    "content_digest",
)
CONTENT_FIELDS = (
    "input_redacted",
    "output_redacted",
    "findings",
    "scores",
    "latency_ms",
    "subject_hmacs",
    "prompt_hmac",
    "shadow",
    "tokens_in",
    "tokens_out",
    "coverage",
    "engine",
    "model",
    "model_revision",
)
OPTIONAL_CONTENT_FIELDS = ("client_ref",)
"""Content fields added after rows were first sealed: in the digest only when set, so older rows still verify."""


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _numbers(value: Any) -> Any:
    """Integral floats as ints: JSONB may hand ``5.0`` back as ``5`` and ``1e+16`` as ``10000000000000000``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items()}
    return value


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8, integral floats as ints; datetimes as ISO 8601 UTC. NaN is refused."""
    return json.dumps(
        _numbers(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=lambda v: _iso(v) if isinstance(v, datetime) else str(v),
    ).encode("utf-8")


def content_digest(row: Mapping[str, Any]) -> str:
    content = {name: row.get(name) for name in CONTENT_FIELDS}
    content.update({name: row[name] for name in OPTIONAL_CONTENT_FIELDS if row.get(name) is not None})
    return hashlib.sha256(canonical(content)).hexdigest()


def header_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    header = {name: row.get(name) for name in HEADER_FIELDS}
    header["created_at"] = _iso(row["created_at"])
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(header)).hexdigest()


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


def event_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """``sha256(prev_hash || JSON of content)``: an admin event's row hash (sorted keys, no spaces, ``str()`` for
    anything JSON has no form for)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(prev_hash.encode("ascii") + text.encode("utf-8")).hexdigest()
