"""Group-commits decision rows; each caller waits for its own row's commit before it may answer (no audit, no answer).

Callers enqueue a record and await a future. One writer task takes everything queued (up to ``max_batch``), gives
the rows consecutive ``seq`` numbers, chains their hashes (guard.audit.chain), inserts them in one transaction and
then resolves every caller's future. The queue is bounded: when it is full, or a commit fails, the caller gets
:class:`AuditUnavailable` at once (the API answers 503 + Retry-After). After a failed commit the writer drops the
connection (SQLite may leave it unusable after a disk I/O error), re-reads its chain head from the database, since a
commit whose result is unknown may have landed, and reports :attr:`AuditWriter.failure` (a full disk named as such)
until a commit succeeds again: readiness is not ready meanwhile, and :meth:`AuditWriter.probe` tries such a commit
(one admin event recording the outage), so the service comes back without a restart once space or the database is
back. Writes are never refused for an earlier failure: each request tries its own commit.

One chain per writer instance (``chain_id``), so replicas sharing a database each keep their own. Text is cleaned of
NUL characters and lone surrogates, which PostgreSQL rejects (:func:`guard.audit.chain.clean`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guard import metrics
from guard.audit.admin_events import record_admin_event
from guard.audit.chain import GENESIS_HASH, clean, seal
from guard.audit.cuts import purge_cuts
from guard.audit.models import DecisionRow
from guard.audit.record import AuditRecord
from guard.errors import GuardError

__all__ = ["AuditUnavailable", "AuditWriter", "BatchStats", "Failure", "describe_failure"]

logger = logging.getLogger(__name__)


class AuditUnavailable(GuardError, RuntimeError):
    """The decision could not be committed; the request must not be answered."""


@dataclass(slots=True)
class _Pending:
    record: AuditRecord
    future: asyncio.Future[None]
    queued_at: float = field(default_factory=time.perf_counter)


_DISK_FULL = ("database or disk is full", "no space left on device", "could not extend file", "disk full")


def describe_failure(exc: BaseException) -> str:
    """A commit failure in words an operator acts on; only the exception's type and these fixed phrases, never its
    message (which can quote SQL parameters)."""
    chain = [exc, *(e for e in (exc.__cause__, getattr(exc, "orig", None)) if e is not None)]
    text = " ".join(str(e).lower() for e in chain)
    names = " ".join(type(e).__name__ for e in chain)
    if any(phrase in text for phrase in _DISK_FULL) or "DiskFull" in names:  # SQLITE_FULL, ENOSPC, PG's 53100
        return "disk full"
    if "disk i/o error" in text:  # SQLITE_IOERR: e.g. a WAL or journal write that failed
        return "disk I/O error"
    return type(exc).__name__


@dataclass(frozen=True, slots=True)
class Failure:
    """The writer's last commit failed: since when, why (:func:`describe_failure`) and how many commits failed."""

    since: datetime
    reason: str
    commits: int


@dataclass(frozen=True, slots=True)
class BatchStats:
    """What the writer has committed so far (read by the benchmark)."""

    batches: int
    rows: int
    largest: int


class AuditWriter:
    """The decision log's single writer for one chain; ``await write(record)`` returns once the row is committed."""

    def __init__(
        self, engine: AsyncEngine, *, chain_id: str | None = None, max_queue: int = 10_000, max_batch: int = 512
    ) -> None:
        self._engine = engine
        self.chain_id = chain_id or str(uuid.uuid4())
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._queue: deque[_Pending] = deque()
        self._in_flight = 0
        self._head: tuple[int, str] | None = None  # (seq, row_hash); None: read it from the database
        # Bound to the running loop on first use, so a writer may be built before the loop runs.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._batches = 0
        self._rows = 0
        self._largest = 0
        self._failure: Failure | None = None

    @property
    def failure(self) -> Failure | None:
        """Set while the last commit failed, cleared by the next that succeeds (readiness reads it)."""
        return self._failure

    @property
    def queue_depth(self) -> int:
        """Rows queued or being committed now (``guard_audit_queue_depth``)."""
        return len(self._queue) + self._in_flight

    @property
    def stats(self) -> BatchStats:
        return BatchStats(batches=self._batches, rows=self._rows, largest=self._largest)

    async def write(self, record: AuditRecord) -> None:
        """Commit ``record``; raise :class:`AuditUnavailable` if the queue is full or the database does not take it."""
        if self._closed:
            raise AuditUnavailable("audit writer is closed")
        if len(self._queue) >= self._max_queue:
            raise AuditUnavailable("audit queue is full")
        loop = asyncio.get_running_loop()
        wakeup = self._start(loop)
        pending = _Pending(record, loop.create_future())
        self._queue.append(pending)
        wakeup.set()
        await pending.future
        elapsed = time.perf_counter() - pending.queued_at
        metrics.STAGE_SECONDS.labels(stage="audit").observe(elapsed)
        if record.kind != "stream_open":  # a stream counts once, by its closing record
            decision = record.decision if record.outcome == "ok" else record.outcome
            metrics.observe_decision(
                policy=record.policy_name, decision=decision, findings=record.findings, latency_ms=record.latency_ms
            )

    async def aclose(self) -> None:
        """Stop taking rows, commit everything queued, then stop the writer task (graceful shutdown)."""
        self._closed = True
        if self._task is None or self._wakeup is None or self._loop is not asyncio.get_running_loop():
            return  # nothing started, or its loop is gone with what it held
        self._wakeup.set()
        await asyncio.shield(self._task)

    def _start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        if self._loop is not loop or self._task is None or self._task.done():
            if self._loop is not loop:
                self._head = None  # a new loop (e.g. a second test client): trust only the database
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run(self._wakeup), name=f"audit-writer-{self.chain_id}")
        assert self._wakeup is not None
        return self._wakeup

    async def _run(self, wakeup: asyncio.Event) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                wakeup.clear()
                await wakeup.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
            self._in_flight = len(batch)
            try:
                await self._commit(batch)
            except Exception as exc:  # any failure: no caller may answer, and the writer goes on
                self._head = None
                failure = self._failed(exc)
                logger.error("audit commit of %d rows failed: %s", len(batch), failure.reason)
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(AuditUnavailable(f"audit commit failed ({failure.reason})"))
            else:
                for pending in batch:
                    if not pending.future.done():  # a caller that gave up still has its row
                        pending.future.set_result(None)
            finally:
                self._in_flight = 0

    def _failed(self, exc: BaseException) -> Failure:
        previous = self._failure
        since = previous.since if previous is not None else datetime.now(UTC)
        self._failure = Failure(since, describe_failure(exc), (previous.commits if previous else 0) + 1)
        return self._failure

    async def probe(self) -> None:
        """While commits fail (readiness): commit one admin event recording the outage; its success clears
        :attr:`failure`, its failure raises. A commit, not a read: a full disk still answers reads."""
        failure = self._failure
        if failure is None:
            return
        details = {"chain_id": self.chain_id, "since": failure.since.isoformat(), "failed_commits": failure.commits}
        try:
            async with self._transaction() as connection:
                await record_admin_event(
                    connection, actor="guard", action="audit_recovered", subject=failure.reason, details=details
                )
        except Exception as exc:
            self._failed(exc)
            raise
        if self._failure is failure:  # no commit failed while this one ran
            self._failure = None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction whose connection is discarded, not pooled, when it fails."""
        async with self._engine.connect() as connection:
            try:
                async with connection.begin():
                    yield connection
            except Exception:
                await connection.invalidate()
                raise

    async def _commit(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        async with self._transaction() as connection:
            seq, prev = self._head if self._head is not None else await self._read_head(connection)
            rows = []
            for pending in batch:
                seq += 1
                content = clean(msgspec.to_builtins(pending.record))
                content["created_at"] = pending.record.created_at
                row = seal(content, chain_id=self.chain_id, seq=seq, prev_hash=prev)
                prev = row["row_hash"]
                rows.append(row)
            await connection.execute(insert(DecisionRow), rows)
        self._head = (seq, prev)
        self._failure = None
        metrics.AUDIT_COMMIT_SECONDS.observe(time.perf_counter() - started)
        self._batches += 1
        self._rows += len(batch)
        self._largest = max(self._largest, len(batch))

    async def _read_head(self, connection: AsyncConnection) -> tuple[int, str]:
        head = (
            await connection.execute(
                select(DecisionRow.seq, DecisionRow.row_hash)
                .where(DecisionRow.chain_id == self.chain_id, DecisionRow.seq.is_not(None))
                .order_by(DecisionRow.seq.desc())
                .limit(1)
            )
        ).first()
        if head is not None:
            return int(head.seq), head.row_hash
        return await self._purged_head(connection)

    async def _purged_head(self, connection: AsyncConnection) -> tuple[int, str]:
        """A chain whose rows were all purged goes on from the recorded cut."""
        cut = (await purge_cuts(connection)).get(self.chain_id)
        return (cut.seq, cut.row_hash) if cut is not None else (0, GENESIS_HASH)
