"""How a generator is loaded: decide and validate device, dtype, attention, quantization and placement, then load.

:func:`plan_load` turns :class:`~guard.settings.LocalEngineSettings` into a :class:`LoadPlan` and refuses, with a
fix-it message, every combination that would fail late or run differently from what the operator asked (above
all an attention implementation that drops Gemma-2's softcaps). :func:`load_model` carries the plan out;
:func:`maybe_compile` and :func:`warm_up` are the optional ``torch.compile`` path.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from guard.engine.base import EngineUnavailable
from guard.engine.quantize import quantize_int8, require_torchao
from guard.hardware import cpu_has_bf16
from guard.settings import LocalEngineSettings

if TYPE_CHECKING:
    import torch

__all__ = [
    "LoadPlan",
    "Quantization",
    "choose_device",
    "choose_dtype",
    "load_model",
    "maybe_compile",
    "plan_load",
    "read_model_type",
    "warm_up",
]

logger = logging.getLogger(__name__)

Quantization = Literal["none", "8bit", "4bit", "int8"]

ATTN_IMPLEMENTATIONS = ("auto", "eager", "flash_attention_2", "flex_attention", "sdpa")
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
SOFTCAP_MODEL_TYPES = frozenset({"gemma2"})
"""Model types whose attention softcaps logits: an implementation that cannot (sdpa) changes their outputs."""
FLASH_ATTN_MIN = (2, 6)  # the first flash-attn release with the softcap argument
BITSANDBYTES_MIN = (0, 46, 1)  # the oldest bitsandbytes transformers 5 accepts
ACCELERATE_MIN = (1, 1)  # the oldest accelerate transformers 5 accepts (device_map, bitsandbytes)
_DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """Everything :func:`load_model` needs, decided and validated up front (so it can be logged and reported)."""

    device: str
    dtype: torch.dtype
    attn_implementation: str
    quantization: Quantization
    device_map: str | None
    threads: int
    omp_wait_policy: str
    """The ``OMP_WAIT_POLICY`` the process started with, or ``"unset"``."""
    compile: bool

    def describe(self) -> str:
        """One line for logs and /readyz, e.g. ``cpu, bfloat16, eager, 2 threads, OMP_WAIT_POLICY=PASSIVE``."""
        parts = [self.device, str(self.dtype).removeprefix("torch."), self.attn_implementation]
        if self.quantization != "none":
            cpu = self.device == "cpu"
            int8 = "int8 (PyTorch quantized, per-row activations)" if cpu else "int8 weight-only (torchao)"
            names = {"4bit": "4bit nf4", "8bit": "8bit", "int8": int8}
            parts.append(names[self.quantization])
        if self.device_map is not None:
            parts.append(f"device_map={self.device_map}")
        if self.device == "cpu":
            parts += [f"{self.threads} threads", f"OMP_WAIT_POLICY={self.omp_wait_policy}"]
        if self.compile:
            parts.append("torch.compile")
        return ", ".join(parts)


def choose_device(setting: str) -> str:
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def choose_dtype(setting: str, device: str) -> Any:
    import torch

    named = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if setting != "auto":
        return named[setting]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def _threads(setting: int) -> int:
    if setting:
        return setting
    affinity = getattr(os, "sched_getaffinity", None)  # absent on macOS
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def _version(distribution: str) -> tuple[int, ...] | None:
    """The installed version's leading numbers (``2.8.3.post2`` → ``(2, 8, 3)``), or None when not installed."""
    try:
        text = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    match = re.match(r"\d+(\.\d+)*", text)
    return tuple(int(part) for part in match.group().split(".")) if match else None


def _has(distribution: str, minimum: tuple[int, ...]) -> bool:
    found = _version(distribution)
    return found is not None and found >= minimum


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineUnavailable(
            f"GUARD_DEVICE={device} but torch {torch.__version__} sees no CUDA device: install a CUDA build of torch "
            "on a GPU machine, or set GUARD_DEVICE=auto (or cpu)."
        )


def _check_dtype(setting: str) -> None:
    if setting not in _DTYPES:
        raise EngineUnavailable(f"GUARD_DTYPE={setting!r} is not one of {', '.join(_DTYPES)}.")


def _choose_attn(setting: str, model_type: str, device: str, dtype: torch.dtype) -> str:
    """Resolve ``auto`` and refuse implementations that cannot run here or would drop the softcap."""
    import torch

    if setting not in ATTN_IMPLEMENTATIONS:
        raise EngineUnavailable(
            f"GUARD_ATTN_IMPLEMENTATION={setting!r} is not one of {', '.join(ATTN_IMPLEMENTATIONS)}."
        )
    softcaps = model_type in SOFTCAP_MODEL_TYPES
    half = dtype in (torch.bfloat16, torch.float16)
    if setting == "auto":
        if device.startswith("cuda") and half and _has("flash-attn", FLASH_ATTN_MIN):
            return "flash_attention_2"
        return "eager" if softcaps else "sdpa"
    if setting == "sdpa" and softcaps:
        raise EngineUnavailable(
            f"GUARD_ATTN_IMPLEMENTATION=sdpa cannot serve {model_type}: SDPA cannot apply its attention softcap and "
            "transformers refuses it. Use eager, flash_attention_2 (CUDA, flash-attn >= 2.6), flex_attention or auto."
        )
    if setting == "flash_attention_2":
        _check_flash_attn(device, half)
    return setting


def _check_flash_attn(device: str, half: bool) -> None:
    need = f"flash-attn >= {_dotted(FLASH_ATTN_MIN)}"
    if not device.startswith("cuda"):
        raise EngineUnavailable(
            f"GUARD_ATTN_IMPLEMENTATION=flash_attention_2 needs a CUDA device (this one is {device}): "
            "use eager or auto on CPU."
        )
    found = _version("flash-attn")
    if found is None or found < FLASH_ATTN_MIN:
        have = "it is not installed" if found is None else f"found {_dotted(found)}"
        raise EngineUnavailable(
            f"GUARD_ATTN_IMPLEMENTATION=flash_attention_2 needs {need} (older releases cannot softcap; {have}): "
            "`pip install 'guard[gpu]'` or set GUARD_ATTN_IMPLEMENTATION=eager."
        )
    if not half:
        raise EngineUnavailable("flash_attention_2 runs in bfloat16 or float16 only: set GUARD_DTYPE=auto or bfloat16.")


def _check_quantization(setting: str, device: str) -> Quantization:
    if setting not in ("none", "8bit", "4bit", "int8"):
        raise EngineUnavailable(f"GUARD_QUANTIZATION={setting!r} is not one of none, 8bit, 4bit, int8.")
    if setting == "none":
        return "none"
    if setting == "int8":  # CPU: PyTorch's quantized linear; CUDA: torchao weight-only int8
        if device != "cpu":
            require_torchao()
        return "int8"
    if not device.startswith("cuda"):
        raise EngineUnavailable(
            f"GUARD_QUANTIZATION={setting} (bitsandbytes) needs a CUDA device (this one is {device}): "
            "set GUARD_QUANTIZATION=none on CPU; bf16 on a CPU with AVX512-BF16/AMX is the fast path there."
        )
    _require("bitsandbytes", BITSANDBYTES_MIN, f"GUARD_QUANTIZATION={setting}")
    _require("accelerate", ACCELERATE_MIN, f"GUARD_QUANTIZATION={setting}")
    return cast("Quantization", setting)


def _require(distribution: str, minimum: tuple[int, ...], wanted_by: str) -> None:
    if not _has(distribution, minimum):
        found = _version(distribution)
        have = "it is not installed" if found is None else f"found {_dotted(found)}"
        raise EngineUnavailable(
            f"{wanted_by} needs {distribution} >= {_dotted(minimum)} ({have}): `pip install 'guard[gpu]'`."
        )


def _check_device_map(setting: str | None, device: str) -> str | None:
    """Multi-GPU placement only; refused on CPU, where a GPU deployment's settings would silently run ~100x slower."""
    if setting is None:
        return None
    if not device.startswith("cuda"):
        raise EngineUnavailable(
            f"GUARD_DEVICE_MAP={setting} places the model across GPUs, but the device is {device}: unset it on CPU."
        )
    if setting not in DEVICE_MAP_STRATEGIES and not setting.startswith("cuda"):
        raise EngineUnavailable(
            f"GUARD_DEVICE_MAP={setting!r} is not one of {', '.join(DEVICE_MAP_STRATEGIES)} or a device such as cuda:1."
        )
    _require("accelerate", ACCELERATE_MIN, f"GUARD_DEVICE_MAP={setting}")
    return setting


def _check_compiler(device: str, attn_implementation: str, compile_: bool) -> None:
    """Inductor (torch.compile, and flex_attention which compiles itself) builds C++ kernels on CPU."""
    needs = compile_ or attn_implementation == "flex_attention"
    if device == "cpu" and needs and not (os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")):
        raise EngineUnavailable(
            "torch.compile and flex_attention on CPU need a C++ compiler (none found): install g++, or set "
            "GUARD_COMPILE=0 and GUARD_ATTN_IMPLEMENTATION=eager."
        )


def _omp_wait_policy(device: str) -> str:
    policy = os.environ.get("OMP_WAIT_POLICY") or "unset"
    if device == "cpu" and policy.upper() != "PASSIVE":
        # OpenMP reads it when torch loads, so only the service's environment can fix it.
        logger.warning(
            "OMP_WAIT_POLICY=%s: CPU decode on few cores measured ~10x slower than with PASSIVE; "
            "start the service with OMP_WAIT_POLICY=PASSIVE",
            policy,
        )
    return policy


def plan_load(settings: LocalEngineSettings, model_type: str) -> LoadPlan:
    """Decide how to load a ``model_type`` model (from its config.json) or raise :class:`EngineUnavailable`."""
    _check_dtype(settings.dtype)
    device = choose_device(settings.device)
    _check_device(device)
    dtype = choose_dtype(settings.dtype, device)
    attn = _choose_attn(settings.attn_implementation, model_type, device, dtype)
    quantization = _check_quantization(settings.quantization, device)
    if quantization == "int8" and device == "cpu" and settings.compile:
        raise EngineUnavailable(
            "GUARD_QUANTIZATION=int8 on CPU runs PyTorch's quantized linear eagerly (it is the fast path there); "
            "torch.compile does not trace it: set GUARD_COMPILE=0."
        )
    device_map = _check_device_map(settings.device_map, device)
    _check_compiler(device, attn, settings.compile)
    return LoadPlan(
        device=device,
        dtype=dtype,
        attn_implementation=attn,
        quantization=quantization,
        device_map=device_map,
        threads=_threads(settings.threads),
        omp_wait_policy=_omp_wait_policy(device),
        compile=settings.compile,
    )


def _unavailable(ref: str, exc: OSError) -> EngineUnavailable:
    return EngineUnavailable(
        f"generator model {ref!r} is not available: {str(exc).splitlines()[0]} "
        "Run `guard models pull` on a connected machine (Gemma weights are gated: accept the licence "
        "and log in with `hf auth login` first), or set GUARD_MODEL to a local directory."
    )


def read_model_type(ref: str) -> str:
    """The ``model_type`` in ``ref``'s config.json (what :func:`plan_load` needs), or :class:`EngineUnavailable`."""
    from transformers import AutoConfig

    try:
        return str(AutoConfig.from_pretrained(ref).model_type)
    except OSError as exc:
        raise _unavailable(ref, exc) from None
    except ValueError as exc:  # no model_type, or one this transformers does not know
        raise EngineUnavailable(f"generator model {ref!r} cannot be read: {str(exc).splitlines()[0]}") from None


def _quantization_config(plan: LoadPlan) -> Any:
    from transformers import BitsAndBytesConfig

    if plan.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    # nf4 with bf16 compute (fp16 on GPUs without bf16) is the recommended 4-bit inference setting.
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=plan.dtype)


def _from_pretrained_options(plan: LoadPlan) -> dict[str, Any]:
    options: dict[str, Any] = {"dtype": plan.dtype, "attn_implementation": plan.attn_implementation}
    if plan.quantization in ("8bit", "4bit"):
        options["quantization_config"] = _quantization_config(plan)
        # bitsandbytes quantizes while placing weights: name the device rather than let transformers guess.
        options["device_map"] = plan.device_map or plan.device
    elif plan.device_map is not None:
        options["device_map"] = plan.device_map
    return options


def load_model(ref: str, plan: LoadPlan) -> tuple[Any, Any]:
    """Load tokenizer and model as planned: ``(model, tokenizer)``, the model in eval mode on its device(s)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(plan.threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref)
        model = AutoModelForCausalLM.from_pretrained(ref, **_from_pretrained_options(plan))
    except OSError as exc:
        raise _unavailable(ref, exc) from None
    except ImportError as exc:  # a GPU package that plan_load saw but that fails to import
        raise EngineUnavailable(f"cannot load {ref!r} with {plan.describe()}: {str(exc).splitlines()[0]}") from None
    tokenizer.padding_side = "left"  # batched prompts end together, where generation starts
    if plan.device_map is None and plan.quantization in ("none", "int8"):
        model.to(plan.device)  # accelerate/bitsandbytes already placed the other kinds
    model.eval()
    if plan.quantization == "int8":
        quantize_int8(model, plan.device)
    logger.info("loaded %s: %s", ref, plan.describe())
    return model, tokenizer


def maybe_compile(model: Any, plan: LoadPlan, *, backend: str = "inductor") -> Any:
    """Compile the decoder's forward (the model without its vocabulary head) when ``plan.compile``: the path of the
    models the lean Gemma-2 forward does not run (Gemma-2 on it compiles static-shape steps: ``compiled_step``).

    The decoder is what the engine calls each step, not ``generate()``: inside generate() Gemma-2's sliding-window
    cache hits the recompile limit, while a forward called with fixed-size cache buffers compiles once per shape kind
    (batch 1 or more, prefill or decode) and ran 1.3x faster on CPU. ``dynamic=True`` keeps batch and prompt lengths
    symbolic, so every batch-size bucket shares those graphs. Returns the model."""
    if not plan.compile:
        return model
    import torch

    decoder = model.get_decoder()
    decoder.forward = torch.compile(decoder.forward, dynamic=True, backend=backend)
    # The vocabulary projection is called outside the decoder (once per step for all rows); compiled, int8
    # weights (GUARD_QUANTIZATION=int8) get inductor's fused dequantising kernel instead of torchao's slow eager path.
    head = model.get_output_embeddings()
    head.forward = torch.compile(head.forward, dynamic=True, backend=backend)
    return model


def warm_up(plan: LoadPlan, step: Callable[[int], object], batch_sizes: Iterable[int]) -> float:
    """Call the engine's ``step(batch_size)`` per bucket so compilation happens at start-up; returns seconds.

    ``step`` should run what serving runs (a prefill and a decode step, in the same grad mode) or the first
    requests still pay for a recompile. Without compilation there is nothing to warm and it returns at once."""
    if not plan.compile:
        return 0.0
    sizes = sorted(set(batch_sizes))
    started = time.perf_counter()
    for size in sizes:
        step(size)
    elapsed = time.perf_counter() - started
    logger.info("warmed up the compiled forward for batch sizes %s in %.1f s", sizes, elapsed)
    return elapsed
