"""How admitted prompts are grouped for batched prefill: padding and the padded-token budget stay bounded."""

from __future__ import annotations

import pytest

from guard.engine.prefill import prefill_groups

pytestmark = pytest.mark.unit


def test_similar_lengths_share_one_group() -> None:
    assert prefill_groups([128] * 16, chunk=1024) == [range(16)]


def test_a_prompt_under_half_the_longest_starts_a_new_group() -> None:
    assert prefill_groups([100, 60, 50, 49, 30, 14], chunk=1024) == [range(3), range(3, 5), range(5, 6)]


def test_padded_tokens_per_forward_are_bounded() -> None:
    groups = prefill_groups([512] * 20, chunk=1024, padded_tokens=2048)
    assert groups == [range(4), range(4, 8), range(8, 12), range(12, 16), range(16, 20)]
    # long prompts are chunked, so the chunk (not the prompt) bounds one forward's width
    assert prefill_groups([5000, 4000], chunk=1024, padded_tokens=2048) == [range(2)]


def test_nothing_admitted_means_no_groups() -> None:
    assert prefill_groups([], chunk=8) == []
