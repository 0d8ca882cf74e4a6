"""How far a changed generator (int8 weights, or the compiled decode step) is from bf16 eager, teacher-forced.

For each model (the dev generator and the bench model) the bf16 model greedily continues fixed prompts; then both
the bf16 model and the candidate read the same prompt + continuation in one forward, and at every continuation
position we compare their final (softcapped) logits over the servable ids (the tokenizer's): top-1 agreement, the
largest absolute logit difference, and the mean KL(bf16 || candidate) of the softmax distributions. Teacher forcing
scores every position against the same history, so one early near-tie does not derail the rest.

``--compiled`` runs what ``GUARD_COMPILE`` serves for Gemma-2 (:mod:`guard.engine.compiled_step`: inductor, frozen
weights, all prompts as one bucket of rows): each prompt is prefilled by the lean forward, then every continuation
token goes through the compiled decode step and projection one position at a time, against the bf16 model's own
eager forward over the whole sequence.

    python benchmarks/quality.py [--prompts 8] [--new-tokens 64] [--threads N] [--compiled] [--no-int8]
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import time
from pathlib import Path
from typing import Any

from model import dev_generator_dir, ensure_bench_model
from report import RESULTS_DIR, environment, set_runtime_defaults, write_results


def continuations(model: Any, tokenizer: Any, prompts: int, prompt_tokens: int, new_tokens: int) -> list[list[int]]:
    """Random prompts (fixed seed) and the reference model's greedy continuation: whole token sequences."""
    import torch

    rng = random.Random(0)
    first = len(tokenizer.all_special_ids) + 5
    sequences = []
    for _ in range(prompts):
        prompt = [tokenizer.bos_token_id] + [rng.randrange(first, len(tokenizer)) for _ in range(prompt_tokens - 1)]
        with torch.inference_mode():
            output = model.generate(
                torch.tensor([prompt]),
                do_sample=False,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                suppress_tokens=list(range(len(tokenizer), model.config.vocab_size)),
            )
        sequences.append(output[0].tolist())
    return sequences


def compare(reference: Any, candidate: Any, sequences: list[list[int]], start: int, servable: int) -> dict[str, float]:
    """Teacher-forced top-1 agreement, max |logit difference| and mean KL over positions ``start - 1 ..``."""
    import torch

    agree = positions = 0
    max_abs = kl_sum = 0.0
    with torch.inference_mode():
        for sequence in sequences:
            ids = torch.tensor([sequence])
            ref = reference(input_ids=ids).logits[0, start - 1 : -1, :servable].float()
            got = candidate(input_ids=ids).logits[0, start - 1 : -1, :servable].float()
            agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
            positions += ref.shape[0]
            max_abs = max(max_abs, float((ref - got).abs().max()))
            ref_log, got_log = ref.log_softmax(-1), got.log_softmax(-1)
            kl_sum += float((ref_log.exp() * (ref_log - got_log)).sum(-1).sum())
    return {
        "positions": positions,
        "top1_agreement": agree / positions,
        "max_abs_logit": max_abs,
        "kl": kl_sum / positions,
    }


def compare_compiled_step(reference: Any, sequences: list[list[int]], start: int, servable: int) -> dict[str, float]:
    """:func:`compare` for the engine's compiled decode step, decoding all sequences together position by position."""
    import torch

    from guard.engine.compiled_step import CompiledStep
    from guard.engine.kvcache import SlotKVCache, attention_masks
    from guard.engine.lean_forward import lean_forward_for

    lean = lean_forward_for(reference)
    assert lean is not None, "the compiled step runs Gemma-2 with eager attention"
    config, rows, length = reference.config, len(sequences), len(sequences[0])
    ids = torch.tensor(sequences)
    cap = getattr(config, "final_logit_softcapping", None)
    with torch.inference_mode():
        cache = SlotKVCache(config, slots=rows, dtype=reference.dtype, device="cpu")
        cache.reserve(length)
        step = CompiledStep(lean, reference, cache)
        positions = torch.arange(start - 1)[None, :].repeat(rows, 1)
        cache.bind_prefill(0, 0, start - 1, rows)  # the prompt but its last token, as the engine prefills
        lean(ids[:, : start - 1], positions, attention_masks(config, positions, start - 1, reference.dtype), cache)
        logits = []
        for position in range(start - 1, length - 1):
            raw = step.project(step.decode(ids[:, position], torch.full((rows,), position), position + 1))
            logits.append(torch.tanh(raw / cap) * cap if cap else raw)  # the model's final softcap, in its dtype
        got_all = torch.stack(logits, 1)  # [rows, positions, vocab]

    class Stepped:  # compare()'s candidate: these logits for the sequence compared
        def __call__(self, input_ids: Any) -> Any:
            row = sequences.index(input_ids[0].tolist())
            padded = torch.zeros(1, length, got_all.shape[-1])
            padded[0, start - 1 : -1] = got_all[row].float()
            return type("Output", (), {"logits": padded})()

    return compare(reference, Stepped(), sequences, start, servable)


def measure(model_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from guard.engine.quantize import quantize_int8

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation="eager")
    reference.eval()
    started = time.perf_counter()
    sequences = continuations(reference, tokenizer, args.prompts, args.prompt_tokens, args.new_tokens)
    found: dict[str, Any] = {}
    if args.int8:
        int8 = quantize_int8(copy.deepcopy(reference))
        found["int8_vs_bf16"] = compare(reference, int8, sequences, args.prompt_tokens, len(tokenizer))
    if args.compiled:  # the same bf16 weights through inductor: its kernels may round differently
        found["compiled_vs_eager"] = compare_compiled_step(reference, sequences, args.prompt_tokens, len(tokenizer))
    found.update(
        model=str(model_dir),
        parameters=int(sum(p.numel() for p in reference.parameters())),
        prompts=args.prompts,
        prompt_tokens=args.prompt_tokens,
        new_tokens=args.new_tokens,
        seconds=time.perf_counter() - started,
    )
    return found


def main() -> None:
    set_runtime_defaults()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="skip int8 vs bf16")
    parser.add_argument("--compiled", action="store_true", help="also bf16 GUARD_COMPILE's decode step vs eager")
    parser.add_argument("--models", default="dev,bench", help="which models, comma-separated (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    dirs = {"dev": dev_generator_dir, "bench": ensure_bench_model}
    results = {name: measure(dirs[name](), args) for name in args.models.split(",")}
    payload = {"benchmark": "engine-quality", "dtype": "bfloat16", "threads": args.threads, "results": results}
    payload["environment"] = environment()
    for name, r in results.items():
        for pair in ("int8_vs_bf16", "compiled_vs_eager"):
            if q := r.get(pair):
                print(
                    f"{name:>5} {pair}: top-1 agreement {q['top1_agreement']:.4f} over {q['positions']} positions, "
                    f"max |logit diff| {q['max_abs_logit']:.4f}, mean KL {q['kl']:.2e}"
                )
    print(f"results: {write_results('engine-quality', payload, args.out)}")


if __name__ == "__main__":
    main()
