"""GUARD_QUANTIZATION=int8: torchao weight-only int8 on CPU (the ``quant`` extra), refused with the fix without it."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer

from guard.engine.base import EngineUnavailable
from guard.engine.loading import plan_load
from guard.settings import LocalEngineSettings
from tests.services import require_service
from tests.tiny_gemma import tiny_gemma2

pytestmark = pytest.mark.unit

HAS_TORCHAO = importlib.util.find_spec("torchao") is not None


@pytest.mark.parametrize("found", [None, "0.17.1"])
def test_int8_without_torchao_names_the_extra(monkeypatch: pytest.MonkeyPatch, found: str | None) -> None:
    # Whether or not this environment has the extra, the lookup answers as one without it (or with a too-old one).
    def version(name: str) -> str:
        if found is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return found

    monkeypatch.setattr(importlib.metadata, "version", version)
    have = r"it is not installed" if found is None else r"found 0\.17"
    with pytest.raises(EngineUnavailable, match=rf"needs torchao >= 0.18 \({have}\).*guard\[quant\]"):
        plan_load(LocalEngineSettings(device="cpu", quantization="int8"), "gemma2")


def test_int8_keeps_the_greedy_tokens_of_a_tiny_gemma(guard_home: Path) -> None:
    if not HAS_TORCHAO:  # .ci/run installs the quant extra: there a missing torchao fails
        require_service("torchao", "needs the quant extra (torchao): pip install -c constraints.txt -e '.[quant]'")
    from guard.engine.quantize import quantize_int8

    plan = plan_load(LocalEngineSettings(device="cpu", dtype="bfloat16", quantization="int8"), "gemma2")
    assert plan.quantization == "int8"
    assert "int8 weight-only (torchao)" in plan.describe()
    tokenizer = AutoTokenizer.from_pretrained(guard_home / "dev-models" / "gemma-2")
    model: Any = tiny_gemma2(tokenizer, seed=3, tie_word_embeddings=True).to(torch.bfloat16)
    embedding = model.get_input_embeddings().weight.detach().clone()
    ids = torch.tensor([[tokenizer.bos_token_id, *range(40, 60)]])
    with torch.inference_mode():
        reference = model(input_ids=ids).logits.float()
        quantize_int8(model)
        quantized = model(input_ids=ids).logits.float()
    assert torch.equal(model.get_input_embeddings().weight, embedding)  # the lookup table stays bf16
    assert type(model.lm_head.weight).__name__ != "Tensor"  # the projection itself is int8
    assert (reference.argmax(-1) == quantized.argmax(-1)).float().mean() >= 0.9
    assert 0 < float((reference - quantized).abs().max()) < 0.5
