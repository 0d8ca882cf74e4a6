"""Logprobs leave with text the caller received unchanged, and never ahead of it."""

from __future__ import annotations

import pytest

from guard.engine import TokenLogprob
from guard.pipeline.logprobs import LogprobRelease

pytestmark = pytest.mark.unit

PIECES = {1: b"Hello", 2: b" Maria", 3: b" Garcia", 4: b".", 5: b"\xe6", 6: b"\x97\xa5"}


def _release() -> LogprobRelease:
    release = LogprobRelease(PIECES.__getitem__)
    release.add(TokenLogprob(token_id, -0.1 * token_id) for token_id in PIECES)
    return release


def test_entries_follow_the_released_bytes() -> None:
    release = _release()
    assert [e.token_id for e in release.release("Hello Ma", "Hello Ma")] == [1]  # " Maria" is not all sent yet
    assert [e.token_id for e in release.release("ria Garcia.", "ria Garcia.")] == [2, 3, 4]
    assert [e.token_id for e in release.release("日", "日")] == [5, 6]  # byte-fallback pieces of one character


def test_a_rewritten_segment_withholds_the_rest() -> None:
    release = _release()
    assert [e.token_id for e in release.release("Hello", "Hello")] == [1]
    assert release.release(" Maria Garcia.", " <PERSON_1>.") == ()
    assert release.withheld
    assert release.release("日", "日") == ()
