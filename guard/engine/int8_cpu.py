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

**Activations use 7 bits on CPUs without VNNI.** There the integer kernels add pairs of uint8 x int8 products in
16-bit registers, which saturate with full-range activations (measured on an AVX2-only AMD EPYC: greedy tokens of a
tiny Gemma agreed with bf16 at 38%); fbgemm's ``reduce_range`` halves the activation range so the sums fit. CPUs
with VNNI (AVX-512 VNNI, AVX-VNNI, AMX) accumulate in 32 bits and keep all 8 bits.

**Projections of one input share one product.** Preparing a call's activations (the per-row scaling and pinning, a
dozen small operations) costs more than the integer product itself at one row (~85 µs against ~30 µs for a
512x512 layer on a 2-core AMD EPYC). An attention block's q/k/v projections and an MLP's gate/up projections read
the same input, so each group is packed as one fused int8 layer: the first projection called computes every
member's output at once, the others take theirs from it (:class:`FusedInt8`). Integer products accumulate exactly,
so each member's output is what its own layer would give, bit for bit.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch
from torch import nn

__all__ = ["FusedInt8", "Int8Linear", "quantize_linears"]

_PINS = 2
"""The constant activation columns (+1 and -1) that fix the quantization range of every call."""
FUSED_GROUPS: tuple[tuple[str, ...], ...] = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))
"""Sibling projections that read the same input in transformers' Gemma/Llama-style layers (called in this order)."""


_VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@functools.cache
def reduce_range() -> bool:
    """Whether activations must use 7 bits here: unless the CPU lists a VNNI flag (Linux's /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # unknown CPU: the range that is exact everywhere
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return not flags & _VNNI_FLAGS


class Int8Linear(nn.Module):  # type: ignore[misc]  # torch is not type-checked here (follow_imports=skip)
    """A linear layer with int8 weights (per output row) computed by ``torch.ops.quantized.linear_dynamic``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        self.in_features = int(weight.shape[1])
        self.out_features = int(weight.shape[0])
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
        self._reduce_range = reduce_range()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        magnitude = rows.abs().amax(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny)
        pinned = torch.cat([rows / magnitude, self._pins.expand(rows.shape[0], _PINS)], dim=1)
        out = torch.ops.quantized.linear_dynamic(pinned, self._packed, self._reduce_range) * magnitude
        if self.bias is not None:
            out = out + self.bias.float()
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per row"


class _Products:
    """One fused int8 layer over sibling projections and the outputs of its latest input, handed out one by one."""

    def __init__(self, linears: list[nn.Linear]) -> None:
        self.layer = Int8Linear(_concatenated(linears))
        self.sizes = [int(linear.out_features) for linear in linears]
        self._input: torch.Tensor | None = None
        self._outputs: tuple[torch.Tensor, ...] = ()
        self._taken: set[int] = set()

    def output(self, x: torch.Tensor, index: int) -> torch.Tensor:
        # The input object itself is the key (a reference is held, so its identity cannot be reused); a member asked
        # twice, or for another input, starts a new product: a different call order is slower, never wrong.
        if x is not self._input or index in self._taken:
            self._outputs = self.layer(x).split(self.sizes, dim=-1)
            self._input, self._taken = x, set()
        self._taken.add(index)
        out = self._outputs[index]
        if len(self._taken) == len(self.sizes):  # every member has its output: hold no tensors between calls
            self._input, self._outputs, self._taken = None, (), set()
        return out


class FusedInt8(nn.Module):  # type: ignore[misc]  # torch is not type-checked here (follow_imports=skip)
    """One projection of a fused group (:data:`FUSED_GROUPS`): its share of the group's single int8 product."""

    def __init__(self, products: _Products, index: int) -> None:
        super().__init__()
        self._products = products
        self._index = index
        self.in_features = products.layer.in_features
        self.out_features = products.sizes[index]
        self.weight_bytes = products.layer.weight_bytes * self.out_features // sum(products.sizes)
        """This member's share of what the fused product reads (the step profile's bandwidth figures)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._products.output(x, self._index)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per row, fused"


def _concatenated(linears: list[nn.Linear]) -> nn.Linear:
    # On the meta device: no random initialisation of a weight that is replaced at once (large for a 9b MLP).
    out_features = sum(int(linear.out_features) for linear in linears)
    fused = nn.Linear(linears[0].in_features, out_features, bias=False, device="meta")
    fused.weight = nn.Parameter(torch.cat([linear.weight.detach() for linear in linears]), requires_grad=False)
    return fused


def _fusable(module: nn.Module, names: tuple[str, ...]) -> list[nn.Linear] | None:
    linears = [getattr(module, name, None) for name in names]
    if not all(isinstance(linear, nn.Linear) and linear.bias is None for linear in linears):
        return None
    return linears if len({linear.in_features for linear in linears}) == 1 else None  # type: ignore[union-attr]


def quantize_linears(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` by an :class:`Int8Linear` (sibling projections of one input by
    :class:`FusedInt8` members of one product), in place; returns the model."""
    torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    for module in list(model.modules()):
        for names in FUSED_GROUPS:
            linears = _fusable(module, names)
            if linears is not None:
                products = _Products(linears)
                for index, name in enumerate(names):
                    setattr(module, name, FusedInt8(products, index))
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, child_name, Int8Linear(child))
    return model
