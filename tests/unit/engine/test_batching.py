"""Orchestration of the batch window, with a recording batch function in place of the model."""

from __future__ import annotations

import asyncio

import pytest

from guard.engine.base import EngineError, Generation, SamplingParams
from guard.engine.batching import BatchingWorker, Job

pytestmark = pytest.mark.unit


def _echo(batches: list[list[str]]):  # type: ignore[no-untyped-def]
    def run(jobs: list[Job]) -> list[Generation]:
        batches.append([job.prompt for job in jobs])
        return [Generation(job.prompt.upper(), "stop", 1, 1) for job in jobs]

    return run


async def test_requests_arriving_together_share_a_batch() -> None:
    batches: list[list[str]] = []
    worker = BatchingWorker(_echo(batches), window_s=0.05, max_batch=8)
    await worker.start()
    greedy = SamplingParams(max_tokens=4, temperature=0)
    results = await asyncio.gather(*(worker.submit(p, greedy) for p in ["a", "b", "c"]))
    await worker.stop()
    assert [r.text for r in results] == ["A", "B", "C"]
    assert batches == [["a", "b", "c"]]


async def test_incompatible_sampling_runs_in_separate_groups_and_max_batch_holds() -> None:
    batches: list[list[str]] = []
    worker = BatchingWorker(_echo(batches), window_s=0.05, max_batch=2)
    await worker.start()
    greedy = SamplingParams(max_tokens=4, temperature=0)
    hot = SamplingParams(max_tokens=4, temperature=0.9, seed=1)
    await asyncio.gather(
        worker.submit("a", greedy), worker.submit("b", hot), worker.submit("c", greedy), worker.submit("d", greedy)
    )
    await worker.stop()
    assert sorted(len(b) for b in batches) == [1, 1, 2]
    assert ["a"] in batches or ["a", "c"] in batches


async def test_a_failing_batch_fails_every_waiter_and_the_worker_survives() -> None:
    calls = 0

    def flaky(jobs: list[Job]) -> list[Generation]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("CUDA out of memory")
        return [Generation("ok", "stop", 1, 1) for _ in jobs]

    worker = BatchingWorker(flaky, window_s=0.01, max_batch=4)
    await worker.start()
    params = SamplingParams(max_tokens=1, temperature=0)
    with pytest.raises(EngineError):
        await worker.submit("x", params)
    assert (await worker.submit("y", params)).text == "ok"
    await worker.stop()
