"""System (e) of benchmarks/engine.py: llama.cpp's ``llama-server`` on the bench model's own weights.

The bench model is written to GGUF here with the ``gguf`` package (the ``bench`` extra), following the tensor names
and hyper-parameters llama.cpp's Gemma-2 loader reads: its converter cannot run on this model because it wants a
sentencepiece tokenizer, and the dev tokenizer is a ``tokenizer.json``. Every written tensor is read back and
compared with the source. Q8_0 comes from ``llama-quantize``. The binaries come from
``benchmarks/llamacpp_build.sh`` (never built in CI); without them system (e) is skipped with a message.

    python benchmarks/llamacpp.py --check     # write the GGUFs, then F32 llama.cpp vs transformers, token by token
    python benchmarks/llamacpp.py --gguf      # only write (and verify) the GGUFs
    python benchmarks/llamacpp.py --table benchmarks/results/engine-A.json engine-B.json   # guard vs llama.cpp
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from model import MANIFEST, ensure_bench_model, guard_home
from systems import MAX_BATCH, Request, System, Timing

GGUF_FORMAT = 1
"""Bump when the written GGUF changes for the same model, so cached files are rewritten."""

# GGUF token types (gguf.TokenType; asserted equal when writing).
NORMAL, UNKNOWN, CONTROL, UNUSED, BYTE = 1, 2, 3, 5, 6

# Hugging Face Gemma-2 parameter name (after ``model.``) -> GGUF tensor name, as llama.cpp's gemma2 loader reads them.
_GLOBAL_TENSORS = {"embed_tokens.weight": "token_embd.weight", "norm.weight": "output_norm.weight"}
_LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}


class LlamaCppUnavailable(RuntimeError):
    """llama.cpp's binaries (or the gguf package) are missing: system (e) is skipped, with this message."""


# --- pure parts: no gguf, no llama.cpp ----------------------------------------------------------------------------


def gguf_tensor_name(hf_name: str) -> str | None:
    """The GGUF name of a Hugging Face Gemma-2 parameter; None for ``lm_head`` (tied: llama.cpp reuses the
    embedding as the output projection). Unknown names raise: a silently dropped tensor would load as garbage."""
    if hf_name == "lm_head.weight":
        return None
    name = hf_name.removeprefix("model.")
    if name in _GLOBAL_TENSORS:
        return _GLOBAL_TENSORS[name]
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "layers" and parts[1].isdigit() and parts[2] in _LAYER_TENSORS:
        return f"blk.{parts[1]}.{_LAYER_TENSORS[parts[2]]}"
    raise ValueError(f"no GGUF name for {hf_name!r}")


def is_norm(gguf_name: str) -> bool:
    return gguf_name.endswith("norm.weight")


def stored_norm(weight: Any) -> Any:
    """Gemma's RMSNorm multiplies by ``1 + w``; llama.cpp's multiplies by the stored weight: store ``1 + w`` in F32
    (adding 1 in bf16 would round small ``w`` away)."""
    import torch

    return weight.to(torch.float32) + 1.0


@dataclass(frozen=True, slots=True)
class Gemma2Hparams:
    context_length: int
    embedding_length: int
    block_count: int
    feed_forward_length: int
    head_count: int
    head_count_kv: int
    head_dim: int
    rms_norm_eps: float
    attn_logit_softcapping: float
    final_logit_softcapping: float
    sliding_window: int
    sliding_layers: tuple[bool, ...]
    rope_freq_base: float

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Gemma2Hparams:
        """Map a transformers Gemma2Config (as saved in config.json); refuse what llama.cpp's graph would not match."""
        if config.get("model_type") != "gemma2":
            raise ValueError(f"not a Gemma-2 config: {config.get('model_type')!r}")
        if not config.get("tie_word_embeddings", True):
            raise ValueError("llama.cpp's gemma2 graph uses the embedding as the output projection: needs tied weights")
        if config.get("hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
            raise ValueError("llama.cpp's gemma2 FFN is tanh-approximated GELU")
        head_dim = int(config["head_dim"])
        # llama.cpp scales queries by 1/sqrt(head_dim) for every size but 27B (which it detects by layer count).
        if int(config.get("query_pre_attn_scalar", head_dim)) != head_dim or int(config["num_hidden_layers"]) == 46:
            raise ValueError("query_pre_attn_scalar must equal head_dim for llama.cpp's gemma2 attention scale")
        rope = config.get("rope_parameters") or {}
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"unsupported rope scaling {rope.get('rope_type')!r}")
        layers = int(config["num_hidden_layers"])
        default = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)]
        types = config.get("layer_types") or default
        return cls(
            context_length=int(config["max_position_embeddings"]),
            embedding_length=int(config["hidden_size"]),
            block_count=layers,
            feed_forward_length=int(config["intermediate_size"]),
            head_count=int(config["num_attention_heads"]),
            head_count_kv=int(config.get("num_key_value_heads", config["num_attention_heads"])),
            head_dim=head_dim,
            rms_norm_eps=float(config["rms_norm_eps"]),
            attn_logit_softcapping=float(config["attn_logit_softcapping"]),
            final_logit_softcapping=float(config["final_logit_softcapping"]),
            sliding_window=int(config["sliding_window"]),
            sliding_layers=tuple(t == "sliding_attention" for t in types),
            rope_freq_base=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
        )


@dataclass(frozen=True, slots=True)
class Vocabulary:
    tokens: list[str]
    scores: list[float]
    types: list[int]
    bos: int
    eos: int
    unk: int
    pad: int


def vocabulary(tokenizer: dict[str, Any], size: int) -> Vocabulary:
    """The dev tokenizer's pieces as a sentencepiece-style ("llama") GGUF vocabulary, padded to the model's ``size``
    with unused synthetic pieces (the model has 256000 rows, the tokenizer ~1.5k). Requests send token ids, so the
    tokenizer is only ever used to print pieces; scores follow the BPE vocabulary's order (earlier ids first)."""
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    added = {a["id"]: a for a in tokenizer.get("added_tokens", [])}
    pieces = {i: p for p, i in vocab.items()} | {i: a["content"] for i, a in added.items()}
    if max(pieces) >= size:
        raise ValueError(f"tokenizer id {max(pieces)} does not fit the model's {size} rows")
    unk_piece = tokenizer["model"].get("unk_token")
    by_piece = {p: i for i, p in pieces.items()}

    def special(piece: str) -> int:
        if piece not in by_piece:
            raise ValueError(f"tokenizer has no {piece}")
        return by_piece[piece]

    tokens, scores, types = [], [], []
    for i in range(size):
        piece = pieces.get(i)
        if piece is None:
            piece, kind = f"<bench-unused-{i}>", UNUSED
        elif piece == unk_piece:
            kind = UNKNOWN
        elif i in added and added[i].get("special"):
            kind = CONTROL
        elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            kind = BYTE
        else:
            kind = NORMAL
        tokens.append(piece)
        scores.append(-float(i))
        types.append(kind)
    if len(set(tokens)) != size:
        raise ValueError("synthetic pieces collide with the tokenizer's")
    return Vocabulary(tokens, scores, types, special("<bos>"), special("<eos>"), special("<unk>"), special("<pad>"))


# --- GGUF files ---------------------------------------------------------------------------------------------------


def _gguf() -> Any:
    try:
        import gguf
    except ImportError as exc:
        raise LlamaCppUnavailable("the gguf package is missing: pip install -c constraints.txt '.[bench]'") from exc
    return gguf


def llama_home() -> Path:
    return guard_home() / "llama.cpp"


def binaries_dir() -> Path:
    """Where benchmarks/llamacpp_build.sh leaves the binaries (GUARD_LLAMA_CPP_BIN overrides)."""
    return Path(os.environ.get("GUARD_LLAMA_CPP_BIN") or llama_home() / "build" / "bin")


def binary(name: str) -> Path:
    path = binaries_dir() / name
    if not os.access(path, os.X_OK):
        raise LlamaCppUnavailable(f"{path} not found: build it with benchmarks/llamacpp_build.sh (~10 min at -j2)")
    return path


def _model_key(model_dir: Path) -> str:
    manifest = model_dir / MANIFEST
    weights = (model_dir / "model.safetensors").stat()
    source = manifest.read_bytes() if manifest.is_file() else f"{weights.st_size}:{weights.st_mtime_ns}".encode()
    return hashlib.sha256(source + f"gguf{GGUF_FORMAT}".encode()).hexdigest()[:12]


def _write_metadata(writer: Any, hp: Gemma2Hparams, vocab: Vocabulary) -> None:
    """The keys llama.cpp's gemma2 loader and its "llama" (sentencepiece-style) vocabulary read."""
    gguf = _gguf()
    kinds = (gguf.TokenType.NORMAL, gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.UNUSED)
    if tuple(int(t) for t in (*kinds, gguf.TokenType.BYTE)) != (NORMAL, UNKNOWN, CONTROL, UNUSED, BYTE):
        raise ValueError("this gguf package numbers token types differently")
    writer.add_context_length(hp.context_length)
    writer.add_embedding_length(hp.embedding_length)
    writer.add_block_count(hp.block_count)
    writer.add_feed_forward_length(hp.feed_forward_length)
    writer.add_head_count(hp.head_count)
    writer.add_head_count_kv(hp.head_count_kv)
    writer.add_key_length(hp.head_dim)
    writer.add_value_length(hp.head_dim)
    writer.add_layer_norm_rms_eps(hp.rms_norm_eps)
    writer.add_attn_logit_softcapping(hp.attn_logit_softcapping)
    writer.add_final_logit_softcapping(hp.final_logit_softcapping)
    writer.add_sliding_window(hp.sliding_window)
    writer.add_sliding_window_pattern(list(hp.sliding_layers))  # explicit, rather than llama.cpp's default of 2
    writer.add_rope_freq_base(hp.rope_freq_base)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_bos_token_id(vocab.bos)
    writer.add_eos_token_id(vocab.eos)
    writer.add_unk_token_id(vocab.unk)
    writer.add_pad_token_id(vocab.pad)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)


def write_gguf(model_dir: Path, dest: Path, dtype: str) -> dict[str, Any]:
    """Write the model as GGUF ``dtype`` ("f32" or "bf16"; norms always F32), then read every tensor back and
    compare it with the source (bit-exact after the same conversion). Returns the check's summary."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    gguf = _gguf()
    config = json.loads((model_dir / "config.json").read_text())
    hp = Gemma2Hparams.from_config(config)
    vocab = vocabulary(json.loads((model_dir / "tokenizer.json").read_text()), int(config["vocab_size"]))
    known = {
        gguf.TENSOR_NAMES[t].format(bid=b) + ".weight"
        for t in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.GEMMA2]
        for b in range(hp.block_count)
    }
    wide = gguf.GGMLQuantizationType.F32 if dtype == "f32" else gguf.GGMLQuantizationType.BF16
    file_type = gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_BF16

    weights = load_file(str(model_dir / "model.safetensors"))
    expected: dict[str, Any] = {}  # GGUF name -> float32 tensor the file must hold
    tmp = dest.with_suffix(".tmp")
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GEMMA2])
    writer.add_name(f"guard bench model {model_dir.name}")
    writer.add_file_type(int(file_type))
    _write_metadata(writer, hp, vocab)
    for hf_name, tensor in weights.items():
        name = gguf_tensor_name(hf_name)
        if name is None:
            continue
        if name not in known:
            raise ValueError(f"{name} is not a gemma2 tensor in this gguf package")
        if is_norm(name):
            value = stored_norm(tensor).contiguous()
            writer.add_tensor(name, value.numpy())
        elif wide == gguf.GGMLQuantizationType.F32:
            value = tensor.to(torch.float32).contiguous()
            writer.add_tensor(name, value.numpy())
        else:
            value = tensor.to(torch.bfloat16).contiguous()
            writer.add_tensor(name, value.view(torch.int16).numpy().view(np.uint16), raw_dtype=wide)
        expected[name] = value.to(torch.float32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    check = verify_gguf(tmp, expected, tolerance=0.0)
    tmp.replace(dest)
    return check


def verify_gguf(path: Path, expected: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """Read every tensor of ``path`` back (dequantized) and compare it with ``expected`` (float32 torch tensors):
    the same names, shapes, and values within ``tolerance`` x the tensor's max magnitude."""
    import numpy as np

    gguf = _gguf()
    reader = gguf.GGUFReader(str(path))
    found = {t.name: t for t in reader.tensors}
    if set(found) != set(expected):
        raise ValueError(f"{path.name}: tensors differ: missing {set(expected) - set(found)}, extra "
                         f"{set(found) - set(expected)}")  # fmt: skip
    worst = 0.0
    types: dict[str, int] = {}
    for name, want in expected.items():
        tensor = found[name]
        got = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(tuple(want.shape))
        ref = want.numpy()
        scale = float(np.abs(ref).max()) or 1.0
        error = float(np.abs(got.astype(np.float32) - ref).max()) / scale
        if error > tolerance:
            raise ValueError(f"{path.name}: {name} differs from the source by {error:.3g} of its max magnitude")
        worst = max(worst, error)
        kind = gguf.GGMLQuantizationType(tensor.tensor_type).name
        types[kind] = types.get(kind, 0) + 1
    return {"file": str(path), "tensors": len(expected), "types": types, "max_relative_error": worst}


def _expected_from_bf16(path: Path) -> dict[str, Any]:
    """The dequantized tensors of a verified GGUF, as float32 torch tensors (the reference for its quantization)."""
    import torch

    gguf = _gguf()
    reader = gguf.GGUFReader(str(path))
    out = {}
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        out[t.name] = torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).copy())
    return out


@dataclass(frozen=True, slots=True)
class Ggufs:
    paths: dict[str, Path]
    checks: dict[str, dict[str, Any]]


def ensure_ggufs(model_dir: Path, dtypes: Sequence[str] = ("bf16", "q8_0")) -> Ggufs:
    """The bench model as GGUF in each of ``dtypes`` (f32, bf16, q8_0), cached under $GUARD_HOME/llama.cpp/gguf
    by the model's recipe; Q8_0 is ``llama-quantize`` of the bf16 file, checked against it (Q8_0's block error)."""
    out = llama_home() / "gguf"
    out.mkdir(parents=True, exist_ok=True)
    key = _model_key(model_dir)
    paths: dict[str, Path] = {}
    checks: dict[str, dict[str, Any]] = {}
    for dtype in dtypes:
        path = out / f"{model_dir.name}-{key}-{dtype}.gguf"
        record = path.with_suffix(".check.json")
        if path.is_file() and record.is_file():
            paths[dtype], checks[dtype] = path, json.loads(record.read_text())
            continue
        started = time.perf_counter()
        if dtype in ("f32", "bf16"):
            check = write_gguf(model_dir, path, dtype)
        elif dtype == "q8_0":
            source = ensure_ggufs(model_dir, ("bf16",)).paths["bf16"]
            tmp = path.with_suffix(".tmp")
            subprocess.run(
                [str(binary("llama-quantize")), str(source), str(tmp), "Q8_0", "2"],
                check=True,
                capture_output=True,
            )
            # Q8_0 keeps 8 bits per value with one scale per 32: within 1/127 of a block's max, so of the tensor's.
            check = verify_gguf(tmp, _expected_from_bf16(source), tolerance=1 / 127 + 1e-3)
            tmp.replace(path)
            check["file"] = str(path)
        else:
            raise ValueError(f"unknown GGUF dtype {dtype!r}")
        check["seconds"] = round(time.perf_counter() - started, 1)
        record.write_text(json.dumps(check, indent=2) + "\n")
        print(f"gguf: wrote {path} ({check['tensors']} tensors {check['types']}, checked) in {check['seconds']} s")
        paths[dtype], checks[dtype] = path, check
    return Ggufs(paths, checks)


# --- the server ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """One ``llama-server`` process on a free local port; its log goes next to the GGUF."""

    def __init__(
        self, gguf: Path, *, parallel: int, ctx_per_slot: int, threads: int, extra: Sequence[str] = ()
    ) -> None:
        self.gguf = gguf
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.args = [
            str(binary("llama-server")),
            "--model", str(gguf),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--parallel", str(parallel),
            "--cont-batching",
            "--ctx-size", str(parallel * ctx_per_slot),
            "--threads", str(threads),
            "--threads-batch", str(threads),
            "--no-webui",
            "--cache-ram", "0",  # no host-memory prompt cache: every request is prefilled, as in guard
            *extra,
        ]  # fmt: skip
        self.log = gguf.with_name(f"{gguf.stem}-server-{self.port}.log")
        self._process: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("wb") as log:
            return subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)

    async def start(self, ready_within: float = 180.0) -> None:
        import httpx

        process = self._process = self._spawn()
        # engine.py starts systems before its try/finally: a later system failing to start must not leave this running.
        atexit.register(process.kill)
        deadline = time.monotonic() + ready_within
        async with httpx.AsyncClient(base_url=self.base_url, trust_env=False) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"llama-server exited ({process.returncode}); see {self.log}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health")).status_code == 200:
                        return
                await asyncio.sleep(0.25)
        await self.stop()
        raise RuntimeError(f"llama-server not ready in {ready_within:.0f} s; see {self.log}")

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


def completion_body(request: Request, *, stream: bool, n_probs: int = 0) -> dict[str, Any]:
    """Token ids in, exactly ``max_new_tokens`` out, greedy: top-k 1 is the whole sampler chain (argmax over the
    full vocabulary, no other sampler), EOS ignored, no prompt reuse across requests."""
    return {
        "prompt": list(request.prompt),
        "n_predict": request.max_new_tokens,
        "ignore_eos": True,
        "cache_prompt": False,
        "samplers": ["top_k"],
        "top_k": 1,
        "stream": stream,
        "n_probs": n_probs,
    }


_FIDELITY: dict[str, dict[str, Any]] = {}
LOGPROB_TOLERANCE = 0.003
"""F32 llama.cpp vs transformers, top-5 logprobs (measured here: 0.0022 at most over 48 positions)."""


def repack_works(gguf: Path, threads: int) -> bool:
    """Whether llama.cpp's repacked (interleaved-layout) CPU kernels run this model: a short ``llama-bench``."""
    command = [str(binaries_dir() / "llama-bench"), "-m", str(gguf), "-t", str(threads)]
    command += ["-p", "32", "-n", "4", "-r", "1"]
    try:
        return subprocess.run(command, capture_output=True, timeout=120, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class LlamaServerSystem(System):
    """(e) llama.cpp's ``llama-server`` (continuous batching, ``MAX_BATCH`` slots) over HTTP, each request streamed
    on its own new connection; timestamps are taken as the client reads the server-sent events."""

    shared_notes = (
        "(e) llama.cpp samples over all 256000 ids: it is sent token ids and its ids beyond the tokenizer are not "
        "masked (a logit_bias over ~254.5k ids would cost more than the mask); greedy is its top-k 1 sampler",
        "(e) is a separate process reached over local HTTP (server-sent events, a new connection per request); "
        "its client runs on the benchmark's event loop, on the same 2 cores",
    )

    def __init__(self, key: str, dtype: str, model_dir: Path, threads: int, ctx_per_slot: int) -> None:
        binary("llama-server")
        self.key = key
        self.label = f"({key}) llama.cpp {dtype.upper() if dtype != 'bf16' else 'bf16'}"
        ggufs = ensure_ggufs(model_dir, (dtype,))
        self.details: dict[str, Any] = {"gguf": ggufs.checks[dtype], "llama_cpp_threads": threads}
        # On one earlier CPU this build's repacked Q8_0 kernels crashed at the first batch (llama-server and
        # llama-bench alike); there Q8_0 runs without repacking, at the cost of its interleaved-layout speed-up.
        extra = ("--no-repack",) if dtype == "q8_0" and not repack_works(ggufs.paths[dtype], threads) else ()
        self.details["repack"] = dtype == "q8_0" and not extra
        self.notes = (
            (f"({key}) runs with --no-repack: this build's repacked Q8_0 kernels crash on this CPU",)
            if extra
            else self.shared_notes
        )
        self._server = LlamaServer(
            ggufs.paths[dtype], parallel=MAX_BATCH, ctx_per_slot=ctx_per_slot, threads=threads, extra=extra
        )
        self.details["server_args"] = self._server.args[1:]
        self._model_dir = model_dir
        self._client: Any = None

    async def start(self) -> None:
        import httpx

        key = str(self._model_dir)
        if key not in _FIDELITY:  # once per run, before the first llama.cpp system serves
            _FIDELITY[key] = await fidelity_check(self._model_dir, threads=self.details["llama_cpp_threads"])
            print(f"llama.cpp F32 vs transformers: {json.dumps(_FIDELITY[key])}")
        self.details["fidelity_f32"] = _FIDELITY[key]
        await self._server.start()
        # No keep-alive: every streamed request opens (and closes) its own connection.
        self._client = httpx.AsyncClient(
            base_url=self._server.base_url,
            trust_env=False,
            timeout=httpx.Timeout(None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        await self._server.stop()

    async def serve(self, request: Request) -> Timing:
        timing = Timing()
        final: dict[str, Any] = {}
        async with self._client.stream("POST", "/completion", json=completion_body(request, stream=True)) as reply:
            reply.raise_for_status()
            async for line in reply.aiter_lines():
                if not line.startswith("data: "):
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("tokens"):
                    timing.mark_first()
                if chunk.get("stop"):
                    final = chunk
        timing.finished = perf_counter()
        timing.tokens = int(final.get("tokens_predicted", 0))
        if timing.tokens != request.max_new_tokens or final.get("tokens_evaluated") != len(request.prompt):
            raise RuntimeError(
                f"llama-server: {timing.tokens} tokens for {request.max_new_tokens} asked, "
                f"{final.get('tokens_evaluated')} prompt tokens for {len(request.prompt)} sent"
            )
        return timing


def llama_factories(model_dir: Path, threads: int, ctx_per_slot: int) -> dict[str, Callable[[], System]]:
    """engine.py's hook: (e) bf16 and (e-q8) Q8_0, each its own server."""
    return {
        "e": lambda: LlamaServerSystem("e", "bf16", model_dir, threads, ctx_per_slot),
        "e-q8": lambda: LlamaServerSystem("e-q8", "q8_0", model_dir, threads, ctx_per_slot),
    }


# --- fidelity: F32 llama.cpp against transformers -----------------------------------------------------------------


def fidelity_prompts(tokenizer: dict[str, Any], lengths: Sequence[int], seed: int = 0) -> list[list[int]]:
    """Random ids from the tokenizer's non-special pieces, ``<bos>`` first."""
    rng = random.Random(seed)
    specials = {a["id"] for a in tokenizer.get("added_tokens", []) if a.get("special")}
    pool = sorted(set(tokenizer["model"]["vocab"].values()) - specials)
    bos = next(a["id"] for a in tokenizer["added_tokens"] if a["content"] == "<bos>")
    return [[bos, *(rng.choice(pool) for _ in range(n - 1))] for n in lengths]


async def fidelity_check(
    model_dir: Path, *, threads: int = 2, lengths: Sequence[int] = (16, 64, 128), new_tokens: int = 16
) -> dict[str, Any]:
    """F32 GGUF in llama-server against transformers at float32 (eager attention, so both softcaps): llama.cpp's
    greedy continuation is fed to transformers in one pass; at every position transformers' argmax must be
    llama.cpp's token, and llama.cpp's top-5 logprobs are compared with transformers' log-softmax at the same ids."""
    import httpx
    import torch
    from transformers import AutoModelForCausalLM

    path = ensure_ggufs(model_dir, ("f32",)).paths["f32"]
    prompts = fidelity_prompts(json.loads((model_dir / "tokenizer.json").read_text()), lengths)
    # The KV cache is F16 by default: F32 here, so that the whole computation is float32 as in transformers.
    f32_cache = ("--cache-type-k", "f32", "--cache-type-v", "f32")
    server = LlamaServer(
        path, parallel=1, ctx_per_slot=max(lengths) + new_tokens + 16, threads=threads, extra=f32_cache
    )
    replies = []
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, trust_env=False, timeout=600) as client:
            for prompt in prompts:
                body = completion_body(Request(tuple(prompt), "", new_tokens), stream=False, n_probs=5)
                reply = await client.post("/completion", json=body)
                reply.raise_for_status()
                replies.append(reply.json()["completion_probabilities"])
    finally:
        await server.stop()

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    positions = agree = same_top5 = 0
    worst = 0.0
    for prompt, probs in zip(prompts, replies, strict=True):
        generated = [p["id"] for p in probs]
        ids = torch.tensor([prompt + generated[:-1]])
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 :].double()
        logprobs = torch.log_softmax(logits, dim=-1)
        for row, p in zip(logprobs, probs, strict=True):
            positions += 1
            agree += int(int(row.argmax()) == p["id"])
            top = [t["id"] for t in p["top_logprobs"]]
            same_top5 += int(set(top) == set(row.topk(len(top)).indices.tolist()))
            worst = max(worst, *(abs(float(row[t["id"]]) - t["logprob"]) for t in p["top_logprobs"]))
    return {
        "prompts": len(prompts),
        "prompt_lengths": list(lengths),
        "new_tokens": new_tokens,
        "positions": positions,
        "greedy_agreement": agree / positions,
        "top5_same_ids": same_top5 / positions,
        "top5_logprob_max_abs_diff": worst,
        "tolerance": LOGPROB_TOLERANCE,
        "passed": agree == positions and same_top5 == positions and worst <= LOGPROB_TOLERANCE,
    }


def comparison_table(runs: Sequence[dict[str, Any]], guard: str = "d", guard_int8: str = "d-int8") -> str:
    """Median over engine.py runs (JSON payloads) of guard's and llama.cpp's closed-loop tok/s and TTFT p50, as a
    Markdown table with guard ÷ llama.cpp ratios (bf16 ÷ bf16, guard int8 ÷ Q8_0 where the runs have it)."""
    from statistics import median

    def med(workload: str, key: str, metric: str) -> float:
        values = [r["results"][workload][key][metric] for r in runs if key in r["results"].get(workload, {})]
        return median(values) if values else float("nan")

    lines = [
        "| concurrency | guard bf16 tok/s | guard int8 | llama.cpp bf16 | llama.cpp Q8_0 | guard ÷ llama bf16 "
        "| guard int8 ÷ llama Q8_0 | TTFT p50 ms guard bf16 / int8 / llama bf16 / Q8_0 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    workloads = [w for w in runs[0]["results"] if w.startswith("closed c=")]
    keys = (guard, guard_int8, "e", "e-q8")
    # guard compiled (GUARD_COMPILE) and in float32 (GUARD_DTYPE=auto on a CPU without native bf16), where measured
    extras = [k for k in ("d-compiled", "d-fp32") if any(k in r["results"].get(w, {}) for r in runs for w in workloads)]

    def extra_ttft(workload: str, key: str) -> str:
        return f"{med(workload, key, 'ttft_p50_s') * 1000:.0f}"

    for key in extras:
        lines[0] += f" {key} tok/s | {key} ÷ llama bf16 | {key} TTFT p50 ms |"
        lines[1] += "---:|---:|---:|"
    for workload in workloads:
        tok = {k: med(workload, k, "tok_s") for k in (*keys, *extras)}
        ttft = " / ".join(f"{med(workload, k, 'ttft_p50_s') * 1000:.0f}" for k in keys)
        lines.append(
            f"| {workload.removeprefix('closed c=')} | {tok[guard]:.1f} | {tok[guard_int8]:.1f} | {tok['e']:.1f} "
            f"| {tok['e-q8']:.1f} | {tok[guard] / tok['e']:.2f} | {tok[guard_int8] / tok['e-q8']:.2f} | {ttft} |"
            + "".join(f" {tok[k]:.1f} | {tok[k] / tok['e']:.2f} | {extra_ttft(workload, k)} |" for k in extras)
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="F32 llama.cpp against transformers (needs the build)")
    parser.add_argument("--gguf", action="store_true", help="write and verify the f32/bf16 (and q8_0) GGUFs")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the bench model (built if missing)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--table", type=Path, nargs="+", help="engine.py JSON results: print their medians")
    args = parser.parse_args()
    if args.table:
        print(comparison_table([json.loads(p.read_text()) for p in args.table]))
        return
    model_dir = args.model_dir or ensure_bench_model()
    if args.gguf:
        have_quantize = shutil.which(str(binaries_dir() / "llama-quantize")) is not None
        ggufs = ensure_ggufs(model_dir, ("f32", "bf16", "q8_0") if have_quantize else ("f32", "bf16"))
        print(json.dumps({k: str(v) for k, v in ggufs.paths.items()}, indent=2))
    if args.check:
        result = asyncio.run(fidelity_check(model_dir, threads=args.threads))
        print(json.dumps(result, indent=2))
        sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
