"""What the machine's processor can do, for the layers that choose a dtype (the engine, the checks, the dev models)."""

from __future__ import annotations

__all__ = ["cpu_has_bf16"]


def cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 (AVX512-BF16 or AMX): there bf16 is several times faster than fp32. Without
    them torch emulates bf16, which ran MiniLM ~6x slower than fp32 on an AVX2-only EPYC."""
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)
