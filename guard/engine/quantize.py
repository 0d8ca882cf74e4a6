"""int8 weights for the generator's linear layers (``GUARD_QUANTIZATION=int8``).

Every ``nn.Linear`` of the model, the vocabulary projection included, keeps int8 weights with one scale per output
row, so a decode step reads half the bytes of bf16. The projection is untied from the input embedding, which stays
in the model's dtype (the lookup reads one row per token, not the whole matrix).

- **CPU**: PyTorch's own quantized dynamic linear (:mod:`guard.engine.int8_cpu`; activations quantized per row at
  each call, integer products), fast eagerly. torchao's weight-only int8 was measured 3-6x slower than bf16 eagerly
  and not faster than bf16 compiled on a 2-core CPU (README, "Engine speed, issue 22").
- **CUDA**: torchao's weight-only int8 (the ``quant`` extra), activations in the model's dtype.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from guard.engine.base import EngineUnavailable

__all__ = ["TORCHAO_MIN", "quantize_int8", "require_torchao"]

TORCHAO_MIN = (0, 18)


def require_torchao() -> None:
    """Raise :class:`EngineUnavailable` with the fix unless torchao >= 0.18 is installed (the ``quant`` extra)."""
    try:
        found = tuple(int(part) for part in importlib.metadata.version("torchao").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        found = None
    if found is None or found < TORCHAO_MIN:
        have = "it is not installed" if found is None else f"found {'.'.join(map(str, found))}"
        raise EngineUnavailable(
            f"GUARD_QUANTIZATION=int8 needs torchao >= 0.18 ({have}): `pip install 'guard[quant]'`, "
            "or set GUARD_QUANTIZATION=none."
        )


def quantize_int8(model: Any, device: str = "cpu") -> Any:
    """Quantize ``model``'s linear layers in place (int8 weights, per output row) for ``device``; returns the model."""
    import torch

    head = model.get_output_embeddings()
    if head is not None and head.weight is model.get_input_embeddings().weight:
        head.weight = torch.nn.Parameter(head.weight.detach().clone(), requires_grad=False)  # untie: embedding stays
        model.config.tie_word_embeddings = False
    if device == "cpu":
        from guard.engine.int8_cpu import quantize_linears

        return quantize_linears(model)
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8WeightOnlyConfig())
    return model
