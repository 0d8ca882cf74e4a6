"""Incremental detokenization with stop strings, and the per-request sampler, on the dev model's real tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer

from guard.engine.base import SamplingParams
from guard.engine.detokenize import Detokenizer
from guard.engine.sampling import Sampler

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tokenizer(guard_home: Path) -> Any:
    return AutoTokenizer.from_pretrained(guard_home / "dev-models" / "gemma-2")


def _feed(tokenizer: Any, text: str, stop: tuple[str, ...] = ()) -> tuple[list[str], Detokenizer]:
    detokenizer = Detokenizer(lambda ids: str(tokenizer.decode(ids, skip_special_tokens=True)), stop)
    deltas = []
    for token in tokenizer(text, add_special_tokens=False).input_ids:
        detokenizer.add(token)
        deltas.append(detokenizer.release(final=False))
        if detokenizer.stopped:
            break
    deltas.append(detokenizer.release(final=True))
    return deltas, detokenizer


def test_deltas_add_up_to_the_decoded_text(tokenizer: Any) -> None:
    text = "Hello team! Write to help.desk@example.com — ça va? 東京 🙂"
    deltas, _ = _feed(tokenizer, text)
    assert "".join(deltas) == tokenizer.decode(tokenizer(text, add_special_tokens=False).input_ids)
    assert not any("\ufffd" in d for d in deltas)  # multi-byte characters are never split


def test_a_stop_string_is_cut_and_never_partly_released(tokenizer: Any) -> None:
    deltas, detokenizer = _feed(tokenizer, "Hello team! Have a good day. More text.", stop=("good day",))
    assert detokenizer.stopped
    assert "".join(deltas) == "Hello team! Have a "
    assert all("good" not in d for d in deltas)


def test_greedy_sampler_is_argmax() -> None:
    logits = torch.tensor([0.1, 3.0, 2.0])
    assert Sampler(SamplingParams(max_tokens=1, temperature=0.0), torch.device("cpu")).sample(logits) == 1


def test_top_k_and_top_p_restrict_the_choice_and_seed_repeats() -> None:
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    top_p = SamplingParams(max_tokens=1, temperature=1.0, top_p=0.7, seed=1)
    cpu = torch.device("cpu")
    k_draws = {Sampler(SamplingParams(max_tokens=1, top_k=2, seed=s), cpu).sample(logits) for s in range(200)}
    p_draws = {Sampler(SamplingParams(max_tokens=1, top_p=0.7, seed=s), cpu).sample(logits) for s in range(200)}
    assert k_draws == {0, 1}
    assert p_draws == {0, 1}  # 0.5 + 0.3 reaches 0.7: the rest is cut
    first, second = Sampler(top_p, cpu), Sampler(top_p, cpu)
    assert [first.sample(logits) for _ in range(20)] == [second.sample(logits) for _ in range(20)]
