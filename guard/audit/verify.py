"""Walk every decision chain (and the admin-events chain) and report the first broken link of each.

Per chain, rows are read in ``seq`` order and checked for: continuity of ``seq`` (from 1, or from a recorded purge
cut + 1), ``prev_hash`` linking to the previous row (or the genesis / cut hash), the row hash over the header, and
the content digest unless the row was erased.
Given a signed checkpoint, every checkpointed head must still be there with the same hash (or lie at or before a
recorded purge cut): that is what shows a truncated tail.

Everything is read in one read-only transaction that sees one snapshot (:func:`guard.audit.db.snapshot`:
``REPEATABLE READ`` on PostgreSQL, an explicit ``BEGIN`` on SQLite, whose WAL readers keep the snapshot of their first
read), so a purge committing while the verifier walks the rows cannot pair old cuts with new rows and show a false
break.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guard.audit.admin_events import BrokenLink, verify_admin_events_on
from guard.audit.chain import GENESIS_HASH, content_digest, header_hash
from guard.audit.checkpoint import Checkpoint, Head
from guard.audit.cuts import ChainCut, purge_cuts
from guard.audit.db import snapshot
from guard.audit.models import DecisionRow

__all__ = ["ChainBreak", "ChainReport", "VerifyReport", "verify_audit"]


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first row where a chain stops verifying; ``decision_id`` is None when the row itself is gone."""

    decision_id: str | None
    seq: int
    reason: str


@dataclass(slots=True)
class ChainReport:
    chain_id: str
    rows: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    erased: int = 0
    cut: ChainCut | None = None
    broken: ChainBreak | None = None


@dataclass(slots=True)
class VerifyReport:
    chains: list[ChainReport] = field(default_factory=list)
    admin_events: int = 0
    admin_broken: BrokenLink | None = None
    checkpoint_public_key: str | None = None

    @property
    def ok(self) -> bool:
        return self.admin_broken is None and all(chain.broken is None for chain in self.chains)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``GET /v1/audit/verify``)."""
        return {
            "ok": self.ok,
            "chains": [
                {
                    "chain_id": c.chain_id,
                    "rows": c.rows,
                    "erased": c.erased,
                    "head": {"seq": c.head_seq, "row_hash": c.head_hash},
                    "purged_through": c.cut.seq if c.cut else None,
                    "broken": None
                    if c.broken is None
                    else {"decision_id": c.broken.decision_id, "seq": c.broken.seq, "reason": c.broken.reason},
                }
                for c in self.chains
            ],
            "admin_events": {
                "events": self.admin_events,
                "broken": None
                if self.admin_broken is None
                else {"id": self.admin_broken.id, "reason": self.admin_broken.reason},
            },
        }


def _check_row(row: Any, expected_seq: int, expected_prev: str) -> ChainBreak | None:
    if row.seq != expected_seq:
        if row.seq > expected_seq:
            missing = f"seq {expected_seq}" if row.seq == expected_seq + 1 else f"seq {expected_seq}-{row.seq - 1}"
            return ChainBreak(row.decision_id, row.seq, f"{missing} missing before it (rows deleted)")
        return ChainBreak(row.decision_id, row.seq, f"seq out of order (expected {expected_seq})")
    if row.prev_hash != expected_prev:
        return ChainBreak(row.decision_id, row.seq, "prev_hash does not link to the previous row (moved or replaced)")
    fields = row._mapping
    if header_hash(row.prev_hash, fields) != row.row_hash:
        return ChainBreak(row.decision_id, row.seq, "header does not match its row hash (edited)")
    if row.erased_at is None and content_digest(fields) != row.content_digest:
        return ChainBreak(row.decision_id, row.seq, "content does not match its digest (edited or swapped)")
    return None


def _check_head(chain: ChainReport | None, head: Head, cut: ChainCut | None) -> ChainBreak | None:
    """A checkpointed head must still be in its chain with its hash, or lie at or before a purge cut."""
    if cut is not None and head.seq <= cut.seq:
        if head.seq == cut.seq and head.row_hash != cut.row_hash:
            return ChainBreak(head.decision_id, head.seq, "the purge cut's hash differs from the checkpointed head")
        return None
    if chain is None or chain.head_seq < head.seq:
        last = 0 if chain is None else chain.head_seq
        return ChainBreak(
            head.decision_id, head.seq, f"checkpointed head is gone: the chain ends at seq {last} (truncated)"
        )
    return None


async def verify_audit(engine: AsyncEngine, checkpoint: Checkpoint | None = None) -> VerifyReport:
    """Verify every chain in one snapshot; stream the rows so a large log does not sit in memory."""
    async with snapshot(engine) as connection:
        return await _verify(connection, checkpoint)


async def _verify(connection: AsyncConnection, checkpoint: Checkpoint | None) -> VerifyReport:
    report = VerifyReport()
    chains: dict[str, ChainReport] = {}
    cuts = await purge_cuts(connection)
    stream = await connection.stream(
        select(DecisionRow)
        .where(DecisionRow.seq.is_not(None))
        .order_by(DecisionRow.chain_id, DecisionRow.seq)
        .execution_options(yield_per=1000)
    )
    expected: tuple[int, str] = (1, GENESIS_HASH)
    chain: ChainReport | None = None
    async for row in stream:
        if chain is None or row.chain_id != chain.chain_id:
            cut = cuts.get(row.chain_id)
            chain = chains[row.chain_id] = ChainReport(row.chain_id, cut=cut)
            expected = (cut.seq + 1, cut.row_hash) if cut else (1, GENESIS_HASH)
        chain.rows += 1
        chain.erased += row.erased_at is not None
        if chain.broken is None:
            chain.broken = _check_row(row, *expected)
        chain.head_seq, chain.head_hash = row.seq, row.row_hash
        expected = (row.seq + 1, row.row_hash)
    for chain_id, cut in cuts.items():  # chains purged to the end have no rows left
        if chain_id not in chains:
            chains[chain_id] = ChainReport(chain_id, head_seq=cut.seq, head_hash=cut.row_hash, cut=cut)
    if checkpoint is not None:
        report.checkpoint_public_key = checkpoint.public_key
        for chain_id, head in checkpoint.heads.items():
            found = chains.get(chain_id)
            problem = _check_head(found, head, cuts.get(chain_id))
            if (
                problem is None
                and found is not None
                and found.broken is None
                and head.seq > (found.cut.seq if found.cut else 0)
            ):
                problem = await _check_head_hash(connection, chain_id, head)
            if problem is not None:
                if found is None:
                    found = chains[chain_id] = ChainReport(chain_id)
                found.broken = found.broken or problem
    report.chains = sorted(chains.values(), key=lambda c: c.chain_id)
    report.admin_events, report.admin_broken = await verify_admin_events_on(connection)
    return report


async def _check_head_hash(connection: AsyncConnection, chain_id: str, head: Head) -> ChainBreak | None:
    stored = (
        await connection.execute(
            select(DecisionRow.row_hash).where(DecisionRow.chain_id == chain_id, DecisionRow.seq == head.seq)
        )
    ).scalar_one_or_none()
    if stored != head.row_hash:
        return ChainBreak(head.decision_id, head.seq, "row hash differs from the checkpointed head (chain rewritten)")
    return None
