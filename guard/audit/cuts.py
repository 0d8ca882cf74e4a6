"""Purge cuts: where a purge cut each chain, read back from the ``audit.purge`` admin events that recorded them.

The writer goes on from a chain's cut when every row of it was purged; the verifier starts the chain at ``cut + 1``
linked to the cut's hash. Recording a cut is :func:`guard.audit.retention.purge`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from guard.audit.models import AdminEventRow

__all__ = ["PURGE_ACTION", "ChainCut", "purge_cuts"]

PURGE_ACTION = "audit.purge"


@dataclass(frozen=True, slots=True)
class ChainCut:
    """Where a purge cut a chain: the last deleted row's seq and hash (the next row links to it)."""

    seq: int
    row_hash: str


async def purge_cuts(connection: AsyncConnection) -> dict[str, ChainCut]:
    """The latest cut per chain, from the recorded purges (the admin-events chain vouches for them)."""
    cuts: dict[str, ChainCut] = {}
    events = await connection.execute(
        select(AdminEventRow.details).where(AdminEventRow.action == PURGE_ACTION).order_by(AdminEventRow.id)
    )
    for (details,) in events:
        for chain_id, cut in (details.get("chains") or {}).items():
            if chain_id not in cuts or cut["cut_seq"] > cuts[chain_id].seq:
                cuts[chain_id] = ChainCut(int(cut["cut_seq"]), str(cut["cut_hash"]))
    return cuts
