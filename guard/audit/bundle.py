"""``guard audit export --bundle DIR``: records an auditor can verify with no database access.

A bundle is a directory of three files, read from one snapshot of the database (:func:`guard.audit.db.snapshot`):

* ``records.jsonl``: every decision row of the range as stored (redacted text, findings, scores, policy version,
  model, keyed digests; erased rows blanked), one JSON object a line, by chain and ``seq``. Per chain the range is
  the contiguous ``seq`` span from the first to the last row created in it, so the links between rows hold.
* ``admin_events.jsonl``: the whole admin-events chain (keys, purges, erasures, signing-key rotations).
* ``manifest.json``: per chain the first ``seq`` and the ``prev_hash`` it links to, the last ``seq``, its row hash
  and the row count; the admin-events head; a digest of each erased record and of each file; the signing key's
  public key and an Ed25519 signature over the canonical JSON of the rest (key outside the database,
  :func:`guard.audit.checkpoint.signing_key_path`).

:mod:`guard.audit.bundle_verify` checks it (``guard audit verify --bundle DIR`` or as a standalone script).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guard.audit.bundle_verify import (
    BUNDLE_FORMAT,
    EVENTS_FILE,
    GENESIS_HASH,
    MANIFEST_FILE,
    RECORDS_FILE,
    canonical,
    record_digest,
)
from guard.audit.checkpoint import public_key_hex
from guard.audit.cuts import purge_cuts
from guard.audit.db import snapshot
from guard.audit.models import AdminEventRow, DecisionRow
from guard.errors import GuardError

__all__ = ["BundleError", "BundleSummary", "export_bundle"]

_COLUMNS = [column.key for column in DecisionRow.__table__.columns]


class BundleError(GuardError, RuntimeError):
    """The database's own chain does not hold where the bundle would start: nothing is signed."""


@dataclass(frozen=True, slots=True)
class BundleSummary:
    records: int
    chains: int
    admin_events: int
    public_key: str


def _json(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"


def _prepare(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise BundleError(f"{directory} is not empty")


async def _spans(
    connection: AsyncConnection, since: datetime | None, until: datetime | None
) -> dict[str, tuple[int, int]]:
    """Per chain, the ``seq`` span from its first to its last row created in ``[since, until)``."""
    query = select(DecisionRow.chain_id, func.min(DecisionRow.seq), func.max(DecisionRow.seq)).where(
        DecisionRow.seq.is_not(None)
    )
    if since is not None:
        query = query.where(DecisionRow.created_at >= since)
    if until is not None:
        query = query.where(DecisionRow.created_at < until)
    rows = await connection.execute(query.group_by(DecisionRow.chain_id))
    return {chain_id: (first, last) for chain_id, first, last in rows if first is not None and last is not None}


async def _link_before(connection: AsyncConnection, chain_id: str, first_seq: int, cut_hash: str | None) -> str:
    """The hash the span's first row must link to: the previous row's, the purge cut's, or genesis."""
    if first_seq == 1:
        return GENESIS_HASH
    previous = (
        await connection.execute(
            select(DecisionRow.row_hash).where(DecisionRow.chain_id == chain_id, DecisionRow.seq == first_seq - 1)
        )
    ).scalar_one_or_none()
    link = previous or cut_hash
    if link is None:
        raise BundleError(f"chain {chain_id}: seq {first_seq - 1} is missing and no purge cut explains it")
    return link


async def export_bundle(
    engine: AsyncEngine,
    directory: Path,
    key: Ed25519PrivateKey,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> BundleSummary:
    """Write the bundle of ``[since, until)`` into ``directory`` (created; must be empty) and sign its manifest."""
    _prepare(directory)
    chains: dict[str, dict[str, Any]] = {}
    erased: dict[str, str] = {}
    records = 0
    async with snapshot(engine) as connection:
        spans = await _spans(connection, since, until)
        cuts = await purge_cuts(connection)
        with (directory / RECORDS_FILE).open("wb") as out:
            for chain_id, (first, last) in sorted(spans.items()):
                cut = cuts.get(chain_id)
                if cut is not None and first <= cut.seq:  # cannot happen: purged rows are gone
                    raise BundleError(f"chain {chain_id}: seq {first} lies before its purge cut {cut.seq}")
                entry = chains[chain_id] = {
                    "first_seq": first,
                    "first_prev_hash": await _link_before(connection, chain_id, first, cut.row_hash if cut else None),
                    "rows": 0,
                }
                stream = await connection.stream(
                    select(DecisionRow)
                    .where(and_(DecisionRow.chain_id == chain_id, DecisionRow.seq >= first, DecisionRow.seq <= last))
                    .order_by(DecisionRow.seq)
                    .execution_options(yield_per=1000)
                )
                async for row in stream:
                    record = {name: _json(row._mapping[name]) for name in _COLUMNS}
                    out.write(_line(record))
                    if record["erased_at"] is not None:
                        erased[record["decision_id"]] = record_digest(record)
                    entry["rows"] += 1
                    entry.update(last_seq=record["seq"], last_row_hash=record["row_hash"])
                    entry["last_decision_id"] = record["decision_id"]
                    records += 1
        events = 0
        head_hash, head_id = GENESIS_HASH, None
        with (directory / EVENTS_FILE).open("wb") as out:
            for event in await connection.execute(select(AdminEventRow).order_by(AdminEventRow.id)):
                out.write(_line({name: _json(getattr(event, name)) for name in _EVENT_FIELDS}))
                events += 1
                head_hash, head_id = event.row_hash, event.id
    public_key = public_key_hex(key)
    body = {
        "format": BUNDLE_FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "range": {"since": _json(since), "until": _json(until)},
        "chains": chains,
        "erased": erased,
        "admin_events": {"count": events, "head_id": head_id, "head_hash": head_hash},
        "files": {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in _FILES},
        "public_key": public_key,
    }
    manifest = {**body, "signature": base64.b64encode(key.sign(canonical(body))).decode("ascii")}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return BundleSummary(records=records, chains=len(chains), admin_events=events, public_key=public_key)


_EVENT_FIELDS = ("id", "created_at", "actor", "action", "subject", "details", "prev_hash", "row_hash")
_FILES = (RECORDS_FILE, EVENTS_FILE)
