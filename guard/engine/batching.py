"""A simple batch window: requests arriving together are generated together by one worker thread.

The first request opens a window of ``window_s``; everything that arrives before it closes (up to
``max_batch``) runs in the same ``generate()`` call, grouped by compatible sampling settings. One thread owns
the model, so the event loop never runs model code. (Continuous batching replaces this in a later issue.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from guard.engine.base import EngineError, Generation, SamplingParams

__all__ = ["BatchFn", "BatchingWorker", "Job"]


@dataclass(slots=True)
class Job:
    prompt: str
    params: SamplingParams
    future: asyncio.Future[Generation] = field(repr=False)


BatchFn = Callable[[list[Job]], list[Generation]]


def _group_key(params: SamplingParams) -> Hashable:
    """Jobs with the same key can share one ``generate()`` call."""
    if params.greedy:
        return ("greedy",)
    return ("sample", params.temperature, params.top_p, params.seed)


class BatchingWorker:
    def __init__(self, run_batch: BatchFn, *, window_s: float, max_batch: int) -> None:
        self._run_batch = run_batch
        self._window_s = window_s
        self._max_batch = max_batch
        self._queue: asyncio.Queue[Job] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self.last_batch_size = 0

    async def start(self) -> None:
        if self._task is None:
            # Created here, not in __init__: a queue belongs to the event loop that first uses it.
            self._queue = asyncio.Queue()
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="guard-engine")
            self._task = asyncio.create_task(self._loop(self._queue, self._executor), name="guard-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def submit(self, prompt: str, params: SamplingParams) -> Generation:
        if self._task is None or self._queue is None:
            raise EngineError("engine worker is not running")
        job = Job(prompt, params, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.future

    async def _collect(self, queue: asyncio.Queue[Job]) -> list[Job]:
        jobs = [await queue.get()]
        deadline = asyncio.get_running_loop().time() + self._window_s
        while len(jobs) < self._max_batch:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                jobs.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return [job for job in jobs if not job.future.done()]  # drop jobs whose caller went away

    async def _loop(self, queue: asyncio.Queue[Job], executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect(queue)
            groups: dict[Hashable, list[Job]] = {}
            for job in jobs:
                groups.setdefault(_group_key(job.params), []).append(job)
            for group in groups.values():
                self.last_batch_size = len(group)
                try:
                    results = await loop.run_in_executor(executor, self._run_batch, group)
                except Exception as exc:
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(EngineError(f"generation failed: {type(exc).__name__}"))
                    continue
                for job, result in zip(group, results, strict=True):
                    if not job.future.done():
                        job.future.set_result(result)
