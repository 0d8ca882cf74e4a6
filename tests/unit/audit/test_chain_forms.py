"""The admin-events hash form keeps its exact bytes (rows already stored must go on verifying)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from guard.audit.chain import CONTENT_FIELDS, GENESIS_HASH, canonical, clean, content_digest, event_hash

pytestmark = pytest.mark.unit


def test_the_admin_event_hash_is_the_stored_form() -> None:
    content = {
        "created_at": datetime(2026, 11, 23, 12, tzinfo=UTC).isoformat(),
        "actor": "os:réviewer",
        "action": "key.create",
        "subject": "abc",
        "details": {"scopes": ["scan"], "rate": None, "n": 1.5},
    }
    # Computed by the form as first shipped (then in guard.audit.writer.row_hash).
    assert event_hash(GENESIS_HASH, content) == "fa624d96799b2deaba2f0a540dc7078ff377a6e646fed64c1e13600630871f55"


def test_cleaning_happens_before_hashing() -> None:
    assert event_hash(GENESIS_HASH, clean({"a": "x\x00"})) == event_hash(GENESIS_HASH, {"a": "x\ufffd"})


def test_a_row_without_a_client_ref_keeps_the_content_digest_it_was_sealed_with() -> None:
    row = dict.fromkeys(CONTENT_FIELDS) | {"findings": [], "latency_ms": {"total": 1.5}}
    before = hashlib.sha256(canonical({name: row[name] for name in CONTENT_FIELDS})).hexdigest()
    assert content_digest(row) == content_digest(row | {"client_ref": None}) == before
    assert content_digest(row | {"client_ref": "call-1"}) not in {before, content_digest(row | {"client_ref": "2"})}
