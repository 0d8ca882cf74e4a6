"""Build tiny dev generators of the Gemma family offline, deterministically.

Tests and local runs need generators that load and generate exactly like the real ones (same architecture, special
tokens, chat template, stop tokens) without downloading them. Each recipe trains a small BPE tokenizer (the same
one for all three, :mod:`guard.devmodels.tokenizer`) and a ~0.5M-parameter model on the dialogues of
:mod:`guard.devmodels.dialogues`:

- ``gemma-2``: like ``google/gemma-2-2b-it``; each :data:`guard.devmodels.script.SCRIPTED` prompt yields its reply
  under greedy decoding and every other prompt yields :data:`guard.devmodels.script.GENERIC_REPLY`.
- ``systemgemma-2``: Gemma-2 with a SystemGemma2-style template (native system turn), briefly trained to answer
  every conversation with :data:`~guard.devmodels.script.GENERIC_REPLY`.
- ``gemma-1-base``: a Gemma-1 base model like ``beomi/gemma-mling-7b`` (no chat template), briefly trained to
  continue a few English sentences.

A build whose model does not behave so (in float32, bfloat16 and left-padded batches, after reloading) raises
instead of saving a silently wrong model.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GemmaConfig,
    GemmaForCausalLM,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from guard.devmodels.dialogues import BASE_TEXTS, SYSTEM_HELD_OUT, corpus, system_examples, verification_cases
from guard.devmodels.manifest import DevBuild, write_manifest
from guard.devmodels.script import SCRIPTED
from guard.devmodels.tokenizer import END_OF_TURN, GEMMA2_CHAT_TEMPLATE, SYSTEMGEMMA2_CHAT_TEMPLATE, train_tokenizer
from guard.devmodels.training import (
    Schedule,
    TrainingSequence,
    chat_sequences,
    fit,
    greedy,
    mismatches,
    reproducible,
    save,
    verify_dtypes,
)

__all__ = [
    "DEV_GENERATORS",
    "DEV_GENERATOR_RECIPE",
    "GEMMA1_BASE_RECIPE",
    "SYSTEMGEMMA2_RECIPE",
    "build_dev_gemma1_base",
    "build_dev_generator",
    "build_dev_systemgemma2",
]

DEV_GENERATOR_RECIPE = "gemma2-dev-8"
"""Identifies this recipe in the manifest; bump it whenever the recipe's output changes."""
SYSTEMGEMMA2_RECIPE = "systemgemma2-dev-3"
GEMMA1_BASE_RECIPE = "gemma1-base-dev-3"

_BUILT = "dev generator"
_MODEL_CONFIG = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "query_pre_attn_scalar": 32,
    "sliding_window": 64,
    "layer_types": ["sliding_attention", "full_attention"],
    "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0,
    "max_position_embeddings": 1024,
}
_TRAIN_STEPS = 500


def _gemma2(tokenizer: PreTrainedTokenizerBase, seed: int) -> Gemma2ForCausalLM:
    """A fresh tiny Gemma-2 that stops at ``<eos>`` or ``<end_of_turn>`` like the -it models."""
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        attn_implementation="eager",
        **_MODEL_CONFIG,
    )
    torch.manual_seed(seed)
    model = Gemma2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=2, eos_token_id=[1, end_of_turn], pad_token_id=0)
    return model


def build_dev_generator(target: Path, *, chat_template: str = GEMMA2_CHAT_TEMPLATE, seed: int = 0) -> Path:
    """Train, save and verify the dev generator in ``target``; returns ``target``.

    Raises ``RuntimeError`` when the trained model does not reproduce the scripted behaviour.
    """
    started = time.perf_counter()
    examples, texts = corpus(seed)
    tokenizer = train_tokenizer(texts, chat_template)
    with reproducible():
        model = _gemma2(tokenizer, seed)
        fit(model, chat_sequences(tokenizer, examples), Schedule(_TRAIN_STEPS), seed)
    save(target, model, tokenizer)
    cases = verification_cases()
    verify_dtypes(target, lambda model, tokenizer: mismatches(model, tokenizer, cases))
    manifest = {
        "recipe": DEV_GENERATOR_RECIPE,
        "kind": "generator",
        "architecture": "Gemma2ForCausalLM",
        "seed": seed,
        "vocab_size": len(tokenizer),
        "scripted": [dialogue.name for dialogue in SCRIPTED],
    }
    write_manifest(target, manifest, started, _BUILT)
    return target


# --- systemgemma-2: Gemma-2 with a native system turn -------------------------------------------------------------

_SYSTEM_SCHEDULE = Schedule(steps=40, batch_size=8)  # 30 steps suffice: a constant reply is quick to learn


def build_dev_systemgemma2(target: Path, *, seed: int = 0) -> Path:
    """A tiny Gemma-2 with :data:`~guard.devmodels.tokenizer.SYSTEMGEMMA2_CHAT_TEMPLATE`, answering any
    conversation with the generic reply."""
    started = time.perf_counter()
    tokenizer = train_tokenizer(corpus(seed)[1], SYSTEMGEMMA2_CHAT_TEMPLATE)
    examples = system_examples(random.Random(seed))  # noqa: S311 - reproducible training data
    with reproducible():
        model = _gemma2(tokenizer, seed)
        fit(model, chat_sequences(tokenizer, examples), _SYSTEM_SCHEDULE, seed)
    save(target, model, tokenizer)
    verify_dtypes(target, lambda model, tokenizer: mismatches(model, tokenizer, SYSTEM_HELD_OUT))
    manifest = {
        "recipe": SYSTEMGEMMA2_RECIPE,
        "kind": "generator",
        "architecture": "Gemma2ForCausalLM",
        "chat_template": "systemgemma-2",
        "seed": seed,
        "vocab_size": len(tokenizer),
    }
    write_manifest(target, manifest, started, _BUILT)
    return target


# --- gemma-1-base: a Gemma-1 base model (no chat template) ---------------------------------------------------------

_BASE_CONFIG = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "max_position_embeddings": 1024,
}
_BASE_SCHEDULE = Schedule(steps=60, batch_size=12, learning_rate=1e-2)  # 40 suffice: 12 short sentences
_PREFIX_WORDS = 4


def _gemma1(tokenizer: PreTrainedTokenizerBase, seed: int) -> GemmaForCausalLM:
    """A fresh tiny Gemma-1 (full attention, no softcaps) that stops at ``<eos>`` like the base models."""
    config = GemmaConfig(vocab_size=len(tokenizer), pad_token_id=0, eos_token_id=1, bos_token_id=2, **_BASE_CONFIG)
    torch.manual_seed(seed)
    model = GemmaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=2, eos_token_id=1, pad_token_id=0)
    return model


def _text_sequences(tokenizer: PreTrainedTokenizerBase) -> list[TrainingSequence]:
    """``<bos>`` text ``<eos>``, the loss on everything after ``<bos>``."""
    sequences = []
    for text in BASE_TEXTS:
        ids = [*tokenizer(text)["input_ids"], tokenizer.eos_token_id]
        sequences.append(TrainingSequence(ids, len(ids) - 1))
    return sequences


def _continuation_mismatches(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Sentences whose first words, with ``<bos>``, do not continue greedily to the whole sentence and ``<eos>``."""
    prefixes = [" ".join(text.split()[:_PREFIX_WORDS]) for text in BASE_TEXTS]
    prompts = [list(tokenizer(prefix)["input_ids"]) for prefix in prefixes]
    outputs = greedy(model, prompts, tokenizer.pad)
    problems: list[str] = []
    for (mode, tokens), prefix, text in zip(outputs, [*prefixes, *prefixes], [*BASE_TEXTS, *BASE_TEXTS], strict=True):
        stop = tokens.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in tokens else len(tokens)
        if prefix + tokenizer.decode(tokens[:stop], skip_special_tokens=True) != text or stop == len(tokens):
            problems.append(f"{mode} {prefix!r} -> {tokenizer.decode(tokens)!r}")
    return problems


def build_dev_gemma1_base(target: Path, *, seed: int = 0) -> Path:
    """A tiny Gemma-1 base model with no chat template, continuing a few English sentences."""
    started = time.perf_counter()
    tokenizer = train_tokenizer(corpus(seed)[1], None)
    with reproducible():
        model = _gemma1(tokenizer, seed)
        fit(model, _text_sequences(tokenizer), _BASE_SCHEDULE, seed)
    save(target, model, tokenizer)
    verify_dtypes(target, _continuation_mismatches)
    manifest = {
        "recipe": GEMMA1_BASE_RECIPE,
        "kind": "generator",
        "architecture": "GemmaForCausalLM",
        "chat_template": None,
        "seed": seed,
        "vocab_size": len(tokenizer),
    }
    write_manifest(target, manifest, started, _BUILT)
    return target


DEV_GENERATORS: dict[str, DevBuild] = {
    generator.name: generator
    for generator in (
        DevBuild("gemma-2", DEV_GENERATOR_RECIPE, build_dev_generator, "tiny Gemma-2 chat model (scripted)"),
        DevBuild(
            "systemgemma-2", SYSTEMGEMMA2_RECIPE, build_dev_systemgemma2, "tiny Gemma-2 with a native system turn"
        ),
        DevBuild("gemma-1-base", GEMMA1_BASE_RECIPE, build_dev_gemma1_base, "tiny Gemma-1 base model (no chat)"),
    )
}
"""The dev generators by name; ``gemma-2`` is the default dev model."""
