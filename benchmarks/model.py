"""Build the benchmark generator: a Gemma-2-shaped ~160M-parameter model with random weights, offline.

Its shape (and Gemma's real 256000-token vocabulary, which makes the output projection a large share of every
decode step) is what matters for throughput; the weights are random. The tokenizer is the dev generator's (~1.5k
tokens), so ids at or beyond ``len(tokenizer)`` exist in the model but must never be sampled: every benchmarked
system masks them.

    python benchmarks/model.py [--dest DIR] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MANIFEST = "bench-model.json"
SEED = 0
CONFIG: dict[str, Any] = {
    "vocab_size": 256000,
    "hidden_size": 512,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 64,
    "query_pre_attn_scalar": 64,
    "intermediate_size": 2048,
    "hidden_activation": "gelu_pytorch_tanh",
    "layer_types": ["sliding_attention", "full_attention"] * 4,
    "sliding_window": 4096,
    "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0,
    "tie_word_embeddings": True,
    "max_position_embeddings": 8192,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
}
# The manifest's recipe changes whenever the config or seed does, so a stale build is rebuilt.
RECIPE = "gemma2-bench-160m-" + hashlib.sha256(json.dumps([CONFIG, SEED], sort_keys=True).encode()).hexdigest()[:12]


def guard_home() -> Path:
    return Path(os.environ.get("GUARD_HOME") or Path.home() / ".cache" / "guard").expanduser()


def default_dest() -> Path:
    return guard_home() / "bench-models" / "gemma-2-160m"


def dev_generator_dir() -> Path:
    return guard_home() / "dev-models" / "gemma-2"


def is_built(dest: Path) -> bool:
    manifest = dest / MANIFEST
    return manifest.is_file() and json.loads(manifest.read_text())["recipe"] == RECIPE


def ensure_dev_models() -> None:
    """The tokenizer (and the gateway's checks) come from the dev models: build them through the CLI if missing."""
    if (dev_generator_dir() / "guard-dev.json").is_file():
        return
    guard = Path(sys.executable).with_name("guard")
    env = {**os.environ, "GUARD_PROFILE": "dev"}
    subprocess.run([str(guard), "models", "build-dev"], check=True, env=env)


def build(dest: Path) -> int:
    """Save the model (bf16, eager attention: it keeps Gemma-2's softcaps) and the tokenizer; returns the parameters."""
    import torch
    from transformers import AutoTokenizer, Gemma2Config, Gemma2ForCausalLM, GenerationConfig

    ensure_dev_models()
    torch.manual_seed(SEED)
    model = Gemma2ForCausalLM(Gemma2Config(**CONFIG, attn_implementation="eager")).to(torch.bfloat16).eval()
    parameters = int(sum(p.numel() for p in model.parameters()))
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(dev_generator_dir()).save_pretrained(dest)
    GenerationConfig.from_pretrained(dev_generator_dir()).save_pretrained(dest)
    manifest = {"recipe": RECIPE, "seed": SEED, "parameters": parameters, "config": CONFIG}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return parameters


def ensure_bench_model(dest: Path | None = None, *, force: bool = False) -> Path:
    """Build the bench model into ``dest`` unless a build of the same recipe is there; returns ``dest``."""
    dest = dest or default_dest()
    if force or not is_built(dest):
        started = time.perf_counter()
        parameters = build(dest)
        print(
            f"bench model: built {RECIPE} ({parameters / 1e6:.1f}M parameters) in {dest} "
            f"in {time.perf_counter() - started:.0f} s"
        )
    else:
        parameters = json.loads((dest / MANIFEST).read_text())["parameters"]
        print(f"bench model: up to date ({RECIPE}, {parameters / 1e6:.1f}M parameters) in {dest}")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=None, help="default: $GUARD_HOME/bench-models/gemma-2-160m")
    parser.add_argument("--force", action="store_true", help="rebuild even when the recipe is unchanged")
    args = parser.parse_args()
    ensure_bench_model(args.dest, force=args.force)


if __name__ == "__main__":
    main()
