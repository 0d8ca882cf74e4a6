"""Fixtures shared by the e2e modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from tests.tiny_gemma import tiny_gemma2


@pytest.fixture(scope="module")
def endless_model(guard_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev generator's tokenizer on a tiny model that never ends an answer by itself, so a stream runs until
    its client stops it or is cut."""
    target = tmp_path_factory.mktemp("endless") / "gemma-2"
    tokenizer = AutoTokenizer.from_pretrained(guard_home / "dev-models" / "gemma-2")
    model = tiny_gemma2(tokenizer, seed=0, max_position_embeddings=8192)
    with torch.no_grad():
        model.model.embed_tokens.weight[tokenizer.all_special_ids] = 0.0  # logit 0: never the greedy choice
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
