"""Retention and data-subject requests that keep the chains verifiable.

* :func:`purge` deletes, per chain, the longest prefix of rows created before a date (cut by ``seq``, so the rest
  stays contiguous and no row created on or after the date goes) and records an ``audit.purge`` admin event with
  each chain's cut (seq and row hash) in the same transaction; the verifier then starts that chain at ``cut + 1``
  linked to the recorded hash.
* :func:`find_subject` / :func:`erase_subject` find the rows whose ``subject_hmacs`` hold one of a person's keyed
  digests and blank their content fields; the row hash covers only the content digest, so the chain still verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, delete, exists, func, or_, select, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guard.audit.admin_events import record_admin_event
from guard.audit.cuts import PURGE_ACTION, ChainCut
from guard.audit.models import DecisionRow

__all__ = ["ERASE_ACTION", "PurgeResult", "SubjectRow", "erase_subject", "find_subject", "purge"]

ERASE_ACTION = "audit.erase"
_FINDING_KEEP = (
    "check",
    "type",
    "score",
    "threshold",
    "action",
    "clause",
    "stage",
    "message_index",
    "detail",
    "tool_call",
    "path",
)
"""What an erased finding keeps: labels and numbers that say why, not where in the person's text."""


@dataclass(frozen=True, slots=True)
class PurgeResult:
    cuts: dict[str, ChainCut]
    deleted: dict[str, int]


@dataclass(frozen=True, slots=True)
class SubjectRow:
    decision_id: str
    created_at: datetime
    route: str
    decision: str
    chain_id: str
    seq: int | None
    erased: bool


async def purge(engine: AsyncEngine, before: datetime, *, actor: str) -> PurgeResult:
    """Delete every chain's longest prefix of rows created before ``before``, recording the cuts, in one commit.

    The cut is by ``seq``: it stops just before the chain's first row created on or after ``before``, so a row
    numbered early but created after the date (rows get their number when written) is never taken, nor any row
    after it. A chain whose prefix is already gone is left alone."""
    before = before.astimezone(UTC)
    async with engine.begin() as connection:
        bounds = await connection.execute(
            select(
                DecisionRow.chain_id,
                func.min(DecisionRow.seq),
                func.max(DecisionRow.seq),
                func.min(case((DecisionRow.created_at >= before, DecisionRow.seq))),
            )
            .where(DecisionRow.seq.is_not(None))
            .group_by(DecisionRow.chain_id)
        )
        cuts: dict[str, ChainCut] = {}
        deleted: dict[str, int] = {}
        for chain_id, first_seq, last_seq, first_kept in bounds.all():
            cut_seq = last_seq if first_kept is None else first_kept - 1
            if cut_seq < first_seq:  # the chain's first row is not before the date
                continue
            cut_hash = (
                await connection.execute(
                    select(DecisionRow.row_hash).where(DecisionRow.chain_id == chain_id, DecisionRow.seq == cut_seq)
                )
            ).scalar_one()
            result = await connection.execute(
                delete(DecisionRow).where(DecisionRow.chain_id == chain_id, DecisionRow.seq <= cut_seq)
            )
            cuts[chain_id] = ChainCut(cut_seq, cut_hash)
            deleted[chain_id] = result.rowcount or 0
        await record_admin_event(
            connection,
            actor=actor,
            action=PURGE_ACTION,
            subject=None,
            details={
                "before": before.isoformat(),
                "chains": {
                    chain_id: {"cut_seq": cut.seq, "cut_hash": cut.row_hash, "deleted": deleted[chain_id]}
                    for chain_id, cut in cuts.items()
                },
            },
        )
    return PurgeResult(cuts=cuts, deleted=deleted)


def _holds_any(connection: AsyncConnection, digests: list[str]) -> ColumnElement[bool]:
    """Rows whose ``subject_hmacs`` array contains one of ``digests`` (JSONB ``@>``, SQLite ``json_each``)."""
    if connection.dialect.name == "postgresql":
        return or_(*(DecisionRow.subject_hmacs.op("@>")(type_coerce([d], JSONB)) for d in digests))
    each = func.json_each(DecisionRow.subject_hmacs).table_valued("value").alias("subject")
    return exists(select(1).select_from(each).where(each.c.value.in_(digests)))


async def find_subject(engine: AsyncEngine, digests: list[str]) -> list[SubjectRow]:
    """Every row recording one of a person's keyed digests, oldest first."""
    if not digests:
        return []
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(
                DecisionRow.decision_id,
                DecisionRow.created_at,
                DecisionRow.route,
                DecisionRow.decision,
                DecisionRow.chain_id,
                DecisionRow.seq,
                DecisionRow.erased_at,
            )
            .where(_holds_any(connection, digests))
            .order_by(DecisionRow.created_at, DecisionRow.decision_id)
        )
        return [
            SubjectRow(r.decision_id, r.created_at, r.route, r.decision, r.chain_id, r.seq, r.erased_at is not None)
            for r in rows
        ]


def _erased_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**{k: f[k] for k in _FINDING_KEEP if k in f}, "start": 0, "end": 0} for f in findings]


async def erase_subject(engine: AsyncEngine, digests: list[str], *, actor: str) -> list[str]:
    """Blank the content fields of every row holding one of ``digests``; records ``audit.erase``. Returns the ids."""
    if not digests:
        return []
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        rows = (
            await connection.execute(
                select(DecisionRow.decision_id, DecisionRow.findings)
                .where(_holds_any(connection, digests))
                .order_by(DecisionRow.decision_id)
            )
        ).all()
        for decision_id, findings in rows:
            await connection.execute(
                update(DecisionRow)
                .where(DecisionRow.decision_id == decision_id)
                .values(
                    input_redacted=[],
                    output_redacted=None,
                    findings=_erased_findings(findings),
                    scores=[],
                    shadow=None,
                    subject_hmacs=[],
                    prompt_hmac=None,
                    erased_at=now,
                )
            )
        ids = [decision_id for decision_id, _ in rows]
        if ids:
            await record_admin_event(
                connection,
                actor=actor,
                action=ERASE_ACTION,
                subject=None,
                details={"count": len(ids), "decision_ids": ids},
            )
    return ids
