"""A micro-batcher per check: items from concurrent requests are classified together, off the event loop.

Each check gets one worker thread (presidio, spaCy and detoxify are not documented as thread-safe, so a check's
model is only ever used from its own thread). While the worker runs a batch, new submissions queue up; the next
batch takes everything queued, up to ``max_items``. There is no linger timer: a lone request never waits for
company, and under load batches grow by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from guard import metrics
from guard.checks.base import Check, CheckItem, CheckResult

__all__ = ["BatchStats", "CheckBatcher"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class BatchStats:
    """Counters for /metrics and the benchmarks: how many batches ran and how big they were."""

    batches: int = 0
    items: int = 0
    max_items: int = 0
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1024))

    def reset(self) -> None:
        self.batches = self.items = self.max_items = 0
        self.sizes.clear()

    def record(self, size: int) -> None:
        self.batches += 1
        self.items += size
        self.max_items = max(self.max_items, size)
        self.sizes.append(size)


@dataclass(slots=True)
class _Job:
    items: Sequence[CheckItem]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[CheckResult]]


class CheckBatcher:
    def __init__(self, check: Check, *, max_items: int = 64) -> None:
        self.check = check
        self.max_items = max_items
        self.stats = BatchStats()
        self._jobs: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._busy_since: float | None = None
        self._thread = threading.Thread(target=self._work, name=f"guard-check-{check.name}", daemon=True)
        self._thread.start()

    async def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        """The check's results for ``items``, computed in a batch with whatever else is waiting."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        job = _Job(items=items, loop=loop, future=loop.create_future())
        with self._ready:
            if self._closed:
                raise RuntimeError(f"the {self.check.name} check is shut down")
            self._jobs.append(job)
            self._ready.notify()
        return await job.future

    @property
    def queue_depth(self) -> int:
        """Requests waiting for the worker now (``guard_check_queue_depth``)."""
        return len(self._jobs)

    def busy_for(self) -> float:
        """Seconds the batch now running has taken (0 when idle): a hung check shows here, its thread held."""
        since = self._busy_since
        return 0.0 if since is None else time.monotonic() - since

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()

    def _next_batch(self) -> list[_Job] | None:
        with self._ready:
            while not self._jobs and not self._closed:
                self._ready.wait()
            if self._closed and not self._jobs:
                return None
            batch = [self._jobs.popleft()]
            size = len(batch[0].items)
            while self._jobs and size + len(self._jobs[0].items) <= self.max_items:
                job = self._jobs.popleft()
                batch.append(job)
                size += len(job.items)
            return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = [job for job in batch if not job.future.cancelled()]
            if not live:
                continue
            self._busy_since = time.monotonic()
            try:
                self._run_batch(live)
            finally:
                self._busy_since = None

    def _run_batch(self, live: list[_Job]) -> None:
        """One batch through the check; if it fails, each request alone (only the breaking one fails)."""
        try:
            results = self.check.run([item for job in live for item in job.items])
            if len(results) != sum(len(job.items) for job in live):
                raise RuntimeError(f"the {self.check.name} check returned the wrong number of results")
            size = sum(len(job.items) for job in live)
            self.stats.record(size)
            metrics.CHECK_BATCH_SIZE.labels(check=self.check.name).observe(size)
        except Exception as exc:
            if len(live) == 1:
                _settle(live[0], exc)
                return
            # Run each request alone so that only the one whose text breaks the check fails.
            logger.warning(
                "the %s check failed on a batch of %d requests; retrying one by one", self.check.name, len(live)
            )
            for job in live:
                try:
                    _settle(job, self.check.run(job.items))
                except Exception as single:
                    _settle(job, single)
            return
        offset = 0
        for job in live:
            _settle(job, results[offset : offset + len(job.items)])
            offset += len(job.items)


def _settle(job: _Job, outcome: list[CheckResult] | BaseException) -> None:
    def apply() -> None:
        if job.future.done():
            return
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # the request's loop is gone (shutdown)
        job.loop.call_soon_threadsafe(apply)
