"""Weight-only int8 for the generator's linear layers through torchao (``GUARD_QUANTIZATION=int8``).

Every ``nn.Linear`` of the model, the vocabulary projection included, keeps int8 weights with one bf16 scale per
output row; activations stay in the model's dtype. On CPU this halves the bytes a decode step reads, but torchao's
int8 kernels are only fast once compiled (measured eager: 3-6x slower than bf16; compiled, a 256k-row projection
at batch 1 ~2.9x faster), so it is meant with ``GUARD_COMPILE=1``. The projection is untied from the input
embedding, which stays bf16 (the lookup reads one row per token, not the whole matrix).
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


def quantize_int8(model: Any) -> Any:
    """Quantize ``model``'s linear layers in place (weight-only int8, per output row); returns the model."""
    import torch
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    head = model.get_output_embeddings()
    if head is not None and head.weight is model.get_input_embeddings().weight:
        head.weight = torch.nn.Parameter(head.weight.detach().clone(), requires_grad=False)  # untie: embedding stays
        model.config.tie_word_embeddings = False
    quantize_(model, Int8WeightOnlyConfig())
    return model
