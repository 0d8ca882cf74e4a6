"""GUARD_QUANTIZATION=int8: PyTorch's quantized linear on CPU (per-row activations), torchao weight-only on CUDA."""

from __future__ import annotations

import copy
import importlib.metadata
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer

from guard.engine import int8_cpu
from guard.engine.base import EngineUnavailable
from guard.engine.int8_cpu import FusedInt8, Int8Linear, quantize_linears
from guard.engine.loading import plan_load
from guard.engine.quantize import quantize_int8
from guard.settings import LocalEngineSettings
from tests.tiny_gemma import tiny_gemma2

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("found", [None, "0.17.1"])
def test_int8_on_cuda_without_torchao_names_the_extra(monkeypatch: pytest.MonkeyPatch, found: str | None) -> None:
    # Whether or not this environment has the extra, the lookup answers as one without it (or with a too-old one).
    def version(name: str) -> str:
        if found is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return found

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    have = r"it is not installed" if found is None else r"found 0\.17"
    with pytest.raises(EngineUnavailable, match=rf"needs torchao >= 0.18 \({have}\).*guard\[quant\]"):
        plan_load(LocalEngineSettings(device="cuda", quantization="int8"), "gemma2")


def test_int8_on_cpu_needs_no_extra_and_refuses_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    plan = plan_load(LocalEngineSettings(device="cpu", dtype="bfloat16", quantization="int8"), "gemma2")
    assert plan.quantization == "int8"
    assert "int8 (PyTorch quantized, per-row activations)" in plan.describe()
    with pytest.raises(EngineUnavailable, match="GUARD_COMPILE=0"):
        plan_load(LocalEngineSettings(device="cpu", quantization="int8", compile=True), "gemma2")


def _tiny(guard_home: Path) -> tuple[Any, Any]:
    tokenizer = AutoTokenizer.from_pretrained(guard_home / "dev-models" / "gemma-2")
    return tokenizer, tiny_gemma2(tokenizer, seed=3, tie_word_embeddings=True).to(torch.bfloat16)


def test_int8_keeps_the_greedy_tokens_of_a_tiny_gemma(guard_home: Path) -> None:
    tokenizer, model = _tiny(guard_home)
    embedding = model.get_input_embeddings().weight.detach().clone()
    ids = torch.tensor([[tokenizer.bos_token_id, *range(40, 60)]])
    with torch.inference_mode():
        reference = model(input_ids=ids).logits.float()
        quantize_int8(model, "cpu")
        quantized = model(input_ids=ids).logits.float()
    assert torch.equal(model.get_input_embeddings().weight, embedding)  # the lookup table stays bf16
    assert isinstance(model.lm_head, Int8Linear)  # the projection itself is int8
    assert isinstance(model.model.layers[0].self_attn.k_proj, FusedInt8)  # q/k/v share one product
    assert isinstance(model.model.layers[0].mlp.up_proj, FusedInt8)  # gate/up too
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    with torch.inference_mode():
        assert model(input_ids=ids).logits.dtype == torch.bfloat16  # the model keeps its dtype around the int8 layers
    assert (reference.argmax(-1) == quantized.argmax(-1)).float().mean() >= 0.9
    assert 0 < float((reference - quantized).abs().max()) < 0.5


def test_int8_rows_do_not_depend_on_their_batch_neighbours() -> None:
    # One activation range per call would make a row's rounding depend on the rows decoded beside it.
    torch.manual_seed(0)
    layer = Int8Linear(torch.nn.Linear(64, 96, bias=True))
    quiet = torch.randn(1, 64, dtype=torch.bfloat16)
    loud = torch.randn(3, 64, dtype=torch.bfloat16) * 50
    alone = layer(quiet)
    batched = layer(torch.cat([loud[:1], quiet, loud[1:]]))
    assert torch.equal(alone[0], batched[1])
    exact = torch.nn.functional.linear(quiet.float(), layer_weight(layer), layer.bias.float())
    assert float((alone.float() - exact).abs().max()) < 0.05 * float(exact.abs().max())


def layer_weight(layer: Int8Linear) -> torch.Tensor:
    """The dequantized weight of ``layer`` (without its pinning columns)."""
    weight, _ = torch.ops.quantized.linear_unpack(layer._packed)
    return weight.dequantize()[:, : layer.in_features]


class _Siblings(torch.nn.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = torch.nn.Linear(64, 64, bias=False)
        self.k_proj = torch.nn.Linear(64, 32, bias=False)
        self.v_proj = torch.nn.Linear(64, 32, bias=False)


def test_fused_projections_give_each_member_its_own_layers_output_in_any_call_order() -> None:
    torch.manual_seed(1)
    linears = _Siblings()
    alone = {name: Int8Linear(getattr(linears, name)) for name in ("q_proj", "k_proj", "v_proj")}
    fused = quantize_linears(copy.deepcopy(linears))
    x, other = torch.randn(3, 5, 64, dtype=torch.bfloat16), torch.randn(3, 5, 64, dtype=torch.bfloat16)
    # transformers' order, then an unusual one: a member asked twice, and another input in between
    for name in ("q_proj", "k_proj", "v_proj", "k_proj", "q_proj", "v_proj"):
        assert torch.equal(getattr(fused, name)(x), alone[name](x)), name
    assert torch.equal(fused.v_proj(other), alone["v_proj"](other))
    assert torch.equal(fused.q_proj(x), alone["q_proj"](x))
    assert not any(isinstance(m, torch.nn.Linear) for m in fused.modules())


@pytest.mark.parametrize(("flags", "reduced"), [("fpu sse4_2 avx2 fma", True), ("avx2 avx512f avx512_vnni", False)])
def test_activations_use_7_bits_without_vnni(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: str, reduced: bool
) -> None:
    # Without VNNI the integer kernels sum uint8 x int8 pairs in 16 bits: full-range activations saturate.
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    read = Path.read_text
    monkeypatch.setattr(
        Path, "read_text", lambda self, **kw: read(cpuinfo if str(self) == "/proc/cpuinfo" else self, **kw)
    )
    assert int8_cpu.reduce_range.__wrapped__() is reduced
