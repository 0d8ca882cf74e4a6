"""Streaming segmentation (what is checked before release) and the cross-request micro-batcher."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import ClassVar

import pytest

from guard.checks import CheckItem, CheckResult, Finding
from guard.checks.batcher import CheckBatcher
from guard.checks.segmenter import OutputSegmenter

pytestmark = pytest.mark.unit


def _feed_words(segmenter: OutputSegmenter, text: str) -> list[str]:
    segments: list[str] = []
    for word in text.split(" "):
        segments += segmenter.feed(word + " ", 1)
    return segments


def test_segments_end_at_sentences_and_lose_nothing() -> None:
    text = "The weekly meeting is on Thursday at ten. Write to a.b@example.com first. Then come along!"
    segmenter = OutputSegmenter()
    segments = _feed_words(segmenter, text)
    rest = segmenter.flush()
    assert segments == ["The weekly meeting is on Thursday at ten. ", "Write to a.b@example.com first. "]
    assert "".join(segments) + rest == text + " "


def test_cjk_sentences_end_at_their_full_stops() -> None:
    segmenter = OutputSegmenter(min_chars=4)
    assert segmenter.feed("会議は木曜日の十時からです。正直に", 10) == ["会議は木曜日の十時からです。"]
    assert segmenter.flush() == "正直に"


def test_a_long_run_without_a_sentence_end_is_cut_at_whitespace_after_max_tokens() -> None:
    segmenter = OutputSegmenter(max_tokens=4)
    segments = _feed_words(segmenter, "one two three four five six seven eight nine")
    assert segments == ["one two three four ", "five six seven eight "]
    assert segmenter.flush() == "nine "


class _Recording:
    """A real check (the protocol's shape) that records the batch sizes it was called with."""

    name: ClassVar[str] = "recording"

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.gate = threading.Event()

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        self.gate.wait(5)
        self.sizes.append(len(items))
        if any(item.text == "boom" for item in items):
            raise ValueError("this text breaks the check")
        return [
            CheckResult(
                findings=(
                    Finding(
                        check=self.name, type="len", score=1.0, threshold=0.0, action="flag", start=0, end=len(i.text)
                    ),
                )
            )
            for i in items
        ]


async def test_concurrent_requests_are_checked_in_one_batch_and_get_their_own_results() -> None:
    check = _Recording()
    batcher = CheckBatcher(check)
    try:
        first = asyncio.create_task(batcher.run([CheckItem(text="a", config=None, stage="input")]))
        await asyncio.sleep(0.05)  # the worker is now inside run() with the first request, held by the gate
        others = [
            asyncio.create_task(batcher.run([CheckItem(text="x" * n, config=None, stage="input")] * 2))
            for n in range(2, 6)
        ]
        await asyncio.sleep(0.05)
        check.gate.set()
        assert (await first)[0].findings[0].end == 1
        for n, task in zip(range(2, 6), others, strict=True):
            results = await task
            assert [r.findings[0].end for r in results] == [n, n]
        assert check.sizes == [1, 8]  # the four queued requests (2 texts each) went through as one batch
        assert batcher.stats.max_items == 8
    finally:
        batcher.close()


async def test_a_failing_text_fails_only_its_own_request() -> None:
    check = _Recording()
    check.gate.set()
    batcher = CheckBatcher(check)
    try:
        check.gate.clear()
        blocker = asyncio.create_task(batcher.run([CheckItem(text="a", config=None, stage="input")]))
        await asyncio.sleep(0.05)
        good = asyncio.create_task(batcher.run([CheckItem(text="fine", config=None, stage="output")]))
        bad = asyncio.create_task(batcher.run([CheckItem(text="boom", config=None, stage="output")]))
        await asyncio.sleep(0.05)
        check.gate.set()
        await blocker
        assert (await good)[0].findings[0].end == 4
        with pytest.raises(ValueError, match="breaks the check"):
            await bad
    finally:
        batcher.close()
