"""Load planning (every refusal reachable on a CPU machine, CUDA faked where a path needs it) and real loading."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch._dynamo.utils import counters
from transformers import Gemma2Config, Gemma2ForCausalLM, GemmaTokenizer, StaticCache

from guard.engine import loading
from guard.engine.base import EngineUnavailable
from guard.engine.loading import LoadPlan, load_model, maybe_compile, plan_load, read_model_type, warm_up
from guard.settings import LocalEngineSettings, Settings

pytestmark = pytest.mark.unit

CACHE_LEN = 16


def _plan(model_type: str = "gemma2", **changes: Any) -> LoadPlan:
    return plan_load(LocalEngineSettings(**changes), model_type)


def _refusal(model_type: str = "gemma2", **changes: Any) -> str:
    with pytest.raises(EngineUnavailable) as caught:
        _plan(model_type, **changes)
    return str(caught.value)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Distributions the loader sees as installed (none by default): tests add what they need."""
    versions: dict[str, str] = {}

    def version(name: str) -> str:
        if name not in versions:
            raise loading.importlib.metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(loading.importlib.metadata, "version", version)
    return versions


@pytest.fixture
def cuda(monkeypatch: pytest.MonkeyPatch, installed: dict[str, str]) -> dict[str, str]:
    """A fake CUDA device with bf16, for the planning paths; nothing is loaded on it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    return installed


# --- refusals on this CPU machine ---


def test_sdpa_is_refused_for_gemma2_because_it_cannot_softcap() -> None:
    message = _refusal(attn_implementation="sdpa")
    assert "GUARD_ATTN_IMPLEMENTATION=sdpa" in message
    assert "softcap" in message
    assert "transformers refuses it" in message
    assert "eager" in message


def test_sdpa_is_allowed_for_models_without_softcap() -> None:
    assert _plan("gemma3", attn_implementation="sdpa").attn_implementation == "sdpa"


def test_unknown_attention_is_refused() -> None:
    assert "is not one of auto, eager" in _refusal(attn_implementation="paged|eager")


def test_flash_attention_without_cuda_is_refused() -> None:
    message = _refusal(attn_implementation="flash_attention_2")
    assert "needs a CUDA device (this one is cpu)" in message


@pytest.mark.parametrize(
    ("found", "expected"), [(None, "it is not installed"), ("2.5.9", "found 2.5.9")], ids=["missing", "too-old"]
)
def test_flash_attention_needs_flash_attn_2_6(cuda: dict[str, str], found: str | None, expected: str) -> None:
    if found:
        cuda["flash-attn"] = found
    message = _refusal(attn_implementation="flash_attention_2")
    assert "flash-attn >= 2.6" in message
    assert "cannot softcap" in message
    assert expected in message


def test_flash_attention_needs_half_precision(cuda: dict[str, str]) -> None:
    cuda["flash-attn"] = "2.8.3.post2"
    assert "bfloat16 or float16 only" in _refusal(attn_implementation="flash_attention_2", dtype="float32")


def test_flash_attention_on_cuda_with_flash_attn_2_6(cuda: dict[str, str]) -> None:
    cuda["flash-attn"] = "2.8.3.post2"
    plan = _plan(attn_implementation="flash_attention_2")
    assert (plan.device, plan.dtype, plan.attn_implementation) == ("cuda", torch.bfloat16, "flash_attention_2")


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_quantization_without_cuda_is_refused(quantization: str) -> None:
    message = _refusal(quantization=quantization)
    assert f"GUARD_QUANTIZATION={quantization} (bitsandbytes) needs a CUDA device" in message


def test_quantization_needs_bitsandbytes_and_accelerate(cuda: dict[str, str]) -> None:
    assert "bitsandbytes >= 0.46.1 (it is not installed)" in _refusal(quantization="4bit")
    cuda["bitsandbytes"] = "0.45.5"
    assert "bitsandbytes >= 0.46.1 (found 0.45.5)" in _refusal(quantization="4bit")
    cuda["bitsandbytes"] = "0.50.2"
    assert "accelerate >= 1.1" in _refusal(quantization="8bit")
    cuda["accelerate"] = "1.15.0"
    assert _plan(quantization="8bit").quantization == "8bit"


def test_unknown_quantization_is_refused() -> None:
    assert "not one of none, 8bit, 4bit, int8" in _refusal(quantization="gptq")


def test_device_map_on_cpu_is_refused() -> None:
    assert "GUARD_DEVICE_MAP=auto places the model across GPUs, but the device is cpu" in _refusal(device_map="auto")


def test_device_map_on_cuda_needs_accelerate_and_a_known_strategy(cuda: dict[str, str]) -> None:
    assert "accelerate >= 1.1 (it is not installed)" in _refusal(device_map="auto")
    cuda["accelerate"] = "1.15.0"
    assert "is not one of auto, balanced" in _refusal(device_map="everywhere")
    assert _plan(device_map="auto").device_map == "auto"
    assert _plan(device_map="cuda:1").device_map == "cuda:1"


def test_cuda_requested_without_cuda_is_refused() -> None:
    assert "GUARD_DEVICE=cuda but torch" in _refusal(device="cuda")


def test_unknown_dtype_is_refused() -> None:
    assert "GUARD_DTYPE='fp8' is not one of" in _refusal(dtype="fp8")


def test_compile_on_cpu_needs_a_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    assert "need a C++ compiler" in _refusal(compile=True)
    assert "need a C++ compiler" in _refusal(attn_implementation="flex_attention")
    assert not _plan().compile


# --- choices ---


def test_auto_attention_keeps_the_softcap(cuda: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _plan(attn_implementation="auto").attn_implementation == "eager"  # CUDA without flash-attn
    cuda["flash-attn"] = "2.6.3"
    assert _plan(attn_implementation="auto").attn_implementation == "flash_attention_2"
    assert _plan(attn_implementation="auto", dtype="float32").attn_implementation == "eager"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _plan(attn_implementation="auto").attn_implementation == "eager"


def test_flex_attention_is_allowed_when_chosen() -> None:
    assert _plan(attn_implementation="flex_attention").attn_implementation == "flex_attention"


@pytest.mark.parametrize(("bf16_units", "expected"), [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_dtype_on_cpu_follows_bf16_units(
    monkeypatch: pytest.MonkeyPatch, bf16_units: bool, expected: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16_units)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert _plan().dtype == expected
    assert _plan(dtype="float32").dtype == torch.float32


def test_auto_dtype_on_cuda(cuda: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _plan().dtype == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert _plan().dtype == torch.float16


def test_threads_default_to_the_cores_this_process_may_use() -> None:
    assert _plan(threads=3).threads == 3
    assert _plan().threads == len(os.sched_getaffinity(0))


def test_omp_wait_policy_is_reported_and_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=loading.__name__)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert _plan().omp_wait_policy == "PASSIVE"
    assert not caplog.records
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert _plan().omp_wait_policy == "unset"
    assert "OMP_WAIT_POLICY=unset" in caplog.text
    assert "PASSIVE" in caplog.text


def test_describe_is_one_line_for_logs_and_readyz() -> None:
    cpu = LoadPlan("cpu", torch.bfloat16, "eager", "none", None, 2, "PASSIVE", compile=False)
    assert cpu.describe() == "cpu, bfloat16, eager, 2 threads, OMP_WAIT_POLICY=PASSIVE"
    gpu = LoadPlan("cuda", torch.bfloat16, "flash_attention_2", "4bit", "auto", 16, "unset", compile=True)
    assert gpu.describe() == "cuda, bfloat16, flash_attention_2, 4bit nf4, device_map=auto, torch.compile"


def test_quantized_plans_pass_bitsandbytes_options() -> None:
    plan = LoadPlan("cuda", torch.bfloat16, "eager", "4bit", None, 16, "unset", compile=False)
    options = loading._from_pretrained_options(plan)
    config = options["quantization_config"]
    assert (config.load_in_4bit, config.bnb_4bit_quant_type, config.bnb_4bit_compute_dtype) == (
        True,
        "nf4",
        torch.bfloat16,
    )
    assert options["device_map"] == "cuda"
    eight = loading._from_pretrained_options(LoadPlan("cuda", torch.float16, "eager", "8bit", "auto", 1, "", False))
    assert eight["quantization_config"].load_in_8bit
    assert eight["device_map"] == "auto"


def test_settings_read_the_new_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Settings.from_env().engine.local
    assert (engine.quantization, engine.device_map, engine.compile) == ("none", None, False)
    monkeypatch.setenv("GUARD_QUANTIZATION", "4bit")
    monkeypatch.setenv("GUARD_DEVICE_MAP", "auto")
    monkeypatch.setenv("GUARD_COMPILE", "1")
    engine = Settings.from_env().engine.local
    assert (engine.quantization, engine.device_map, engine.compile) == ("4bit", "auto", True)
    monkeypatch.setenv("GUARD_COMPILE", "maybe")
    with pytest.raises(ValueError, match="GUARD_COMPILE"):
        Settings.from_env()


# --- loading a tiny Gemma-2 for real ---


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Gemma-2 (softcaps on) and a byte-level Gemma tokenizer, saved in float32."""
    target = tmp_path_factory.mktemp("tiny-gemma2")
    specials = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")
    vocab = {token: index for index, token in enumerate(specials)}
    vocab.update({f"<0x{byte:02X}>": len(specials) + byte for byte in range(256)})
    tokenizer = GemmaTokenizer(vocab=vocab, merges=[], extra_special_tokens=list(specials[4:]))
    tokenizer.save_pretrained(target)
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=64,  # above CACHE_LEN: both layer kinds then share one mask shape
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=128,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    torch.manual_seed(0)
    Gemma2ForCausalLM(config).save_pretrained(target)
    return target


@pytest.fixture
def restore_threads() -> Any:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.usefixtures("restore_threads")
def test_load_model_follows_the_plan(tiny: Path, dtype: str) -> None:
    plan = _plan(read_model_type(str(tiny)), dtype=dtype, threads=1)
    model, tokenizer = load_model(str(tiny), plan)
    assert model.dtype == plan.dtype == getattr(torch, dtype)
    assert model.config._attn_implementation == "eager"
    assert str(model.device) == "cpu"
    assert not model.training
    assert torch.get_num_threads() == 1
    assert tokenizer.padding_side == "left"
    ids = tokenizer("hi", return_tensors="pt").input_ids
    with torch.inference_mode():
        assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_missing_model_keeps_the_fix_it_message(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    for call in (lambda: read_model_type(missing), lambda: load_model(missing, _plan())):
        with pytest.raises(EngineUnavailable, match="is not available") as caught:
            call()
        assert "guard models pull" in str(caught.value)
        assert "GUARD_MODEL" in str(caught.value)
    with pytest.raises(EngineUnavailable, match="cannot be read"):
        read_model_type(str(tmp_path))  # a directory without config.json


def _decode(forward: Any, config: Any, batch: int) -> list[list[int]]:
    """Greedy prefill + 3 decode steps through forward(), called as the engine calls it (own cache, mask dict)."""
    cache = StaticCache(config=config, max_cache_len=CACHE_LEN)
    ids = torch.randint(3, config.vocab_size, (batch, 5), generator=torch.Generator().manual_seed(batch))
    start, produced = 0, []
    for _ in range(4):
        length = ids.shape[1]
        positions = torch.arange(start, start + length)
        allowed = torch.arange(CACHE_LEN)[None, :] <= positions[:, None]
        mask = torch.zeros(length, CACHE_LEN).masked_fill(~allowed, torch.finfo(torch.float32).min)
        mask = mask[None, None].expand(batch, 1, length, CACHE_LEN)
        with torch.inference_mode():
            logits = forward(
                input_ids=ids,
                position_ids=positions[None].expand(batch, length),
                attention_mask={"full_attention": mask, "sliding_attention": mask},
                past_key_values=cache,
                logits_to_keep=1,
            ).logits
        ids = logits[:, -1].argmax(-1, keepdim=True)
        produced.append(ids)
        start += length
    return torch.cat(produced, dim=1).tolist()


@pytest.mark.usefixtures("restore_threads")
def test_compiled_forward_matches_eager_across_batch_buckets(tiny: Path) -> None:
    """Dynamo capture with the eager backend: the shapes, cache and mask dict compile and give the same tokens.

    Inductor's code generation is left out: it took 35-105 s for this model on 2 cores (same tokens)."""
    plain = load_model(str(tiny), _plan(dtype="float32"))[0]
    model = load_model(str(tiny), _plan(dtype="float32"))[0]
    assert "forward" not in vars(maybe_compile(model, _plan(dtype="float32")).get_decoder())  # off: untouched
    expected = {batch: _decode(plain, plain.config, batch) for batch in (1, 2, 4)}
    plan = _plan(dtype="float32", compile=True)
    compiled = maybe_compile(model, plan, backend="eager")
    assert "forward" in vars(compiled.get_decoder())
    graphs = counters["stats"]["unique_graphs"]
    seconds = warm_up(plan, lambda batch: _decode(compiled, compiled.config, batch), [4, 1, 2])
    assert seconds > 0
    assert counters["stats"]["unique_graphs"] > graphs
    graphs = counters["stats"]["unique_graphs"]
    for batch in (1, 2, 4, 3):
        assert _decode(compiled, compiled.config, batch) == expected.get(batch, _decode(plain, plain.config, batch))
    assert counters["stats"]["unique_graphs"] == graphs  # warmed buckets (and batch 3 between them) reuse graphs
    assert warm_up(_plan(), lambda batch: pytest.fail("warm-up without compile"), [1]) == 0.0
