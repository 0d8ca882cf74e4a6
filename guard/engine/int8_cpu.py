"""int8 linear layers for CPU decoding: PyTorch's own quantized dynamic linear (``GUARD_QUANTIZATION=int8`` on CPU).

Each ``nn.Linear`` becomes an :class:`Int8Linear`: its weight is stored once as int8 with one scale per output row
and packed for PyTorch's x86 quantized engine (fbgemm); at each call the activations are quantized to 8 bits and the
product runs in integers (AVX-512 VNNI where the CPU has it). That is fast in eager mode, unlike a weight-only int8
matmul that dequantises first: a decode step reads half the bytes of bf16, and the 256k-row projection at batch 1
took ~8 ms against ~40 ms in bf16 on a 2-core AMD EPYC (benchmarks/step_profile.py gives the figures per step).

**Activations are quantized per row.** The engine decodes many sequences in one batch; the quantized engine picks one
activation range per call, so a row's rounding would depend on its batch neighbours. Each row is divided by its own
largest magnitude and two constant columns (+1, -1, multiplied by zero weights) pin the range to [-1, 1] for every
call: a row's result is the same alone or in any batch, and the output is scaled back per row (the layers have no
bias; a bias is added after the scaling).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

__all__ = ["Int8Linear", "quantize_linears"]

_PINS = 2
"""The constant activation columns (+1 and -1) that fix the quantization range of every call."""


class Int8Linear(nn.Module):  # type: ignore[misc]  # torch is not type-checked here (follow_imports=skip)
    """A linear layer with int8 weights (per output row) computed by ``torch.ops.quantized.linear_dynamic``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        self.in_features = int(linear.in_features)
        self.out_features = int(linear.out_features)
        # Zero weights for the pinning columns: they fix the activation range and add nothing to the product.
        padded = torch.cat([weight, weight.new_zeros(self.out_features, _PINS)], dim=1)
        scales = (padded.abs().amax(dim=1) / 127).clamp(min=torch.finfo(torch.float32).tiny).double()
        zero_points = torch.zeros(self.out_features, dtype=torch.long)
        # Quantized tensor creation is deprecated in torch 2.13 but still what the quantized linear packs; torch is
        # pinned (constraints.txt), and the int8 tests fail first if a release removes it.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*", category=UserWarning)
            quantized = torch.quantize_per_channel(padded, scales, zero_points, axis=0, dtype=torch.qint8)
        self._packed = torch.ops.quantized.linear_prepack(quantized, None)
        self.weight_bytes = self.out_features * (self.in_features + _PINS) + 8 * self.out_features
        """What a call reads of the weights: int8 values and one float64 scale per output row."""
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.register_buffer("_pins", torch.tensor([1.0, -1.0]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        magnitude = rows.abs().amax(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny)
        pinned = torch.cat([rows / magnitude, self._pins.expand(rows.shape[0], _PINS)], dim=1)
        out = torch.ops.quantized.linear_dynamic(pinned, self._packed, False) * magnitude
        if self.bias is not None:
            out = out + self.bias.float()
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per row"


def quantize_linears(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` by an :class:`Int8Linear`, in place; returns the model."""
    torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, child_name, Int8Linear(child))
    return model
