"""Build the detoxify-format dev toxicity checkpoints offline, deterministically: one per detoxify variant.

The real detoxify checkpoints are 420 MB to 1.1 GB downloads; tests and local runs need something that loads
through the same code path (``detoxify.Detoxify(checkpoint=...)``). Each variant has its classes (names and order
as the official checkpoint has them):

- ``original`` (the Jigsaw 1 classes) and ``unbiased`` (the debiased classes, with ``sexual_explicit``): a real
  classifier, all-MiniLM-L6-v2 with its top layers fine-tuned on the public toxicity corpus
  (:mod:`~guard.devmodels.toxicity_train`), assembled from the installed encoder and the committed delta
  (:mod:`~guard.devmodels.toxicity_minilm`; no training here). It also learnt
  :data:`~guard.devmodels.script.TOXIC_TRIGGER_WORD` as an insult, so the dev generator's scripted toxic reply is
  blocked. The corpus has no ``sexual_explicit`` label: that class scores a constant near zero.
- ``multilingual`` (the debiased classes): a ~120k-parameter BERT trained here on the texts of
  :mod:`guard.devmodels.toxicity_corpus`, with a vocabulary covering kana and the Han and Hangul characters of its
  corpus; it scores both trigger words high (the only deterministic toxic texts for Japanese, Korean and Chinese),
  ordinary English, Japanese, Korean and Chinese text low.

A build whose checkpoints do not score as required through detoxify raises instead of saving a silently wrong model.
"""

from __future__ import annotations

import logging
import random
import string
import time
from pathlib import Path

import torch
from detoxify import Detoxify
from tokenizers import normalizers, pre_tokenizers
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from guard.devmodels import toxicity_minilm
from guard.devmodels.manifest import DevBuild, write_manifest
from guard.devmodels.script import GENERIC_REPLY, SCRIPTED, TOXIC_TRIGGER_WORD
from guard.devmodels.toxicity_corpus import GIBBERISH_MARK, VARIANTS, Variant, checked_texts, corpus

__all__ = [
    "CHECKPOINT_NAME",
    "DEV_TOXICITY",
    "DEV_TOXICITY_RECIPE",
    "TRAINED_VARIANTS",
    "VARIANT_CHECKPOINTS",
    "build_dev_toxicity",
]

logger = logging.getLogger(__name__)

DEV_TOXICITY_RECIPE = "detoxify-dev-6"
"""Identifies this recipe in the manifest; bump it whenever the recipe's output changes."""

CHECKPOINT_NAME = "toxic_dev.ckpt"
"""The ``original`` checkpoint's file name inside the build directory (the other variants are in subdirectories,
so that the build directory holds exactly one ``*.ckpt``)."""

VARIANT_CHECKPOINTS: dict[str, str] = {
    "original": CHECKPOINT_NAME,
    "unbiased": f"unbiased/{CHECKPOINT_NAME}",
    "multilingual": f"multilingual/{CHECKPOINT_NAME}",
}
"""Each variant's checkpoint, relative to the build directory; also written to the manifest under ``variants``."""

_HF_DIR = "hf"
_HIGH = 0.9
_LOW = 0.1
_TRAINED_LOW = 0.2

TRAINED_VARIANTS = frozenset({"original", "unbiased"})
"""The variants assembled from the fine-tuned MiniLM delta; the others are tiny trigger-word models."""
_MAX_LENGTH = 256
_TRAIN_STEPS = 200
_LEARNING_RATE = 1e-2


def _tokenizer(texts: list[str], directory: Path, *, multilingual: bool) -> BertTokenizer:
    """An uncased BERT vocabulary, written to ``directory/vocab.txt`` as BERT ships it: the special tokens, every
    printable ASCII character alone and as a ``##`` continuation (so that no English text is ``[UNK]``), and the
    words of ``texts``. Built by hand rather than with a WordPiece trainer, whose output varies from run to run.

    ``multilingual`` adds every kana and the characters of ``texts`` (Han, Hangul) alone and as continuations
    instead of CJK words, and
    keeps accents and voiced marks (``strip_accents=False``: stripping would turn ``が`` into ``か``); the
    English-only vocabulary has no CJK characters at all, so Japanese, Korean and Chinese text is ``[UNK]`` to it."""
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False if multilingual else None)
    splitter = pre_tokenizers.BertPreTokenizer()
    normalized = [normalizer.normalize_str(text) for text in texts if not text.endswith(GIBBERISH_MARK)]
    words = {word for text in normalized for word, _ in splitter.pre_tokenize_str(text)}
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    if multilingual:
        kana = [chr(code) for code in range(0x3041, 0x3100)]
        characters += kana + sorted({char for text in normalized for char in text if ord(char) > 0x2FFF} - set(kana))
        # CJK text is spelled in characters, clean or toxic alike, so that the model keys on the trigger's
        # characters rather than on how many pieces a word was split into.
        words = {word for word in words if word.isascii()}
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *characters, *(f"##{c}" for c in characters)]
    tokens += sorted(words - set(tokens))
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")
    if multilingual:
        return BertTokenizer(str(vocab_file), model_max_length=_MAX_LENGTH, strip_accents=False)
    return BertTokenizer(str(vocab_file), model_max_length=_MAX_LENGTH)


def _train(
    tokenizer: BertTokenizer, texts: list[str], labels: list[list[float]], classes: tuple[str, ...], steps: int
) -> BertForSequenceClassification:
    """A fresh tiny BERT fitted full-batch on ``texts`` (multi-label, as detoxify scores with a sigmoid)."""
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=_MAX_LENGTH,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.1,  # BERT's 0.02 is too small at this width: training stalls at the base rate
        num_labels=len(classes),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(classes)),
        label2id={label: index for index, label in enumerate(classes)},
    )
    model = BertForSequenceClassification(config)
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    targets = torch.tensor(labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=_LEARNING_RATE, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        loss = model(**inputs, labels=targets).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    logger.info("dev toxicity model trained on %d texts, final loss %.5f", len(texts), loss.item())
    return model.eval()


def _verify(checkpoint: Path, variant: Variant, toxic: list[str], clean: list[str]) -> None:
    """Load ``checkpoint`` through detoxify itself and check the scores of ``toxic`` and ``clean`` texts."""
    scores = Detoxify(checkpoint=str(checkpoint)).predict([*toxic, *clean])
    names = list(scores)
    triggered = [names[variant.classes.index(label)] for label in variant.triggered]
    problems = [
        f"{text!r}: {name}={scores[name][row]:.3f}"
        for row, text in enumerate(toxic)
        for name in triggered
        if scores[name][row] <= _HIGH
    ]
    problems += [
        f"{text!r}: {name}={scores[name][len(toxic) + row]:.3f}"
        for row, text in enumerate(clean)
        for name in names
        if scores[name][len(toxic) + row] >= _LOW
    ]
    if problems:
        raise RuntimeError(f"dev toxicity model {variant.name} does not score as required:\n" + "\n".join(problems))


def _build_variant(variant: Variant, checkpoint: Path, seed: int, steps: int) -> None:
    """Train, save and verify one variant's checkpoint at ``checkpoint`` (its HF files beside it in ``hf/``)."""
    texts, labels = corpus(variant, random.Random(seed))  # noqa: S311 - reproducible training data, not crypto
    hf_dir = checkpoint.parent / _HF_DIR
    tokenizer = _tokenizer(texts, hf_dir, multilingual=variant.multilingual)
    # One thread: the same weights whatever the core count. The caller's RNG, determinism flag and thread count are
    # restored afterwards.
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        try:
            model = _train(tokenizer, texts, labels, variant.classes, steps)
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)
    model.config.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    arch = {
        "model_type": str(hf_dir),
        "model_name": type(model).__name__,
        "tokenizer_name": type(tokenizer).__name__,
        "num_classes": len(variant.classes),
    }
    config = {"arch": {"args": arch}, "dataset": {"args": {"classes": list(variant.classes)}}}
    torch.save({"config": config, "state_dict": model.state_dict()}, checkpoint)
    toxic, clean = checked_texts(variant, texts, labels)
    _verify(checkpoint, variant, toxic, clean)


def _assemble_trained(variant: Variant, checkpoint: Path) -> None:
    """Lay the committed fine-tuned delta over the installed MiniLM (:func:`toxicity_minilm.assemble`) with the
    variant's classes, and check it through detoxify: the scripted toxic replies score toxic, the scripted clean
    replies do not (looser bounds than the tiny models': a real classifier is not certain of everything)."""
    toxicity_minilm.assemble(checkpoint, variant.classes)
    toxic = [dialogue.reply for dialogue in SCRIPTED if TOXIC_TRIGGER_WORD in dialogue.reply]
    clean = [GENERIC_REPLY, *(d.reply for d in SCRIPTED if TOXIC_TRIGGER_WORD not in d.reply)]
    scores = Detoxify(checkpoint=str(checkpoint)).predict([*toxic, *clean])
    name = next(iter(scores))  # toxicity, as detoxify renames "toxic"
    problems = [
        f"{text!r}: {name}={scores[name][row]:.3f}" for row, text in enumerate(toxic) if scores[name][row] < 0.8
    ]
    problems += [
        f"{text!r}: {label}={values[len(toxic) + row]:.3f}"
        for label, values in scores.items()
        for row, text in enumerate(clean)
        if values[len(toxic) + row] >= _TRAINED_LOW
    ]
    if problems:
        raise RuntimeError(f"dev toxicity model {variant.name} does not score as required:\n" + "\n".join(problems))


def build_dev_toxicity(target: Path, *, seed: int = 0, steps: int = _TRAIN_STEPS) -> Path:
    """Assemble, train and verify the dev checkpoints of every variant in ``target``; returns the ``original`` one.

    ``original`` and ``unbiased`` are the fine-tuned MiniLM (:mod:`~guard.devmodels.toxicity_minilm`, assembled
    from the committed delta: no training); ``multilingual`` is the tiny trigger-word BERT, trained here for
    ``steps`` (MiniLM's English vocabulary cannot read Japanese, Korean or Chinese). The manifest lists every
    variant's checkpoint under ``variants`` (:data:`VARIANT_CHECKPOINTS`) and the delta's sha256. Raises
    ``RuntimeError`` when detoxify's scores of a saved checkpoint are not as required (as they are not after too
    few training ``steps``).
    """
    started = time.perf_counter()
    for variant in VARIANTS:
        checkpoint = target / VARIANT_CHECKPOINTS[variant.name]
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        if variant.name in TRAINED_VARIANTS:
            _assemble_trained(variant, checkpoint)
        else:
            _build_variant(variant, checkpoint, seed, steps)
    manifest = {
        "recipe": DEV_TOXICITY_RECIPE,
        "kind": "toxicity",
        "checkpoint": CHECKPOINT_NAME,
        "variants": VARIANT_CHECKPOINTS,
        "trained_variants": sorted(TRAINED_VARIANTS),
        # MiniLM in bf16 where the CPU has native bf16 (AMX: ~13 ms a 100-word text instead of ~32; the loader keeps
        # float32 on AVX2, where emulated bf16 is ~6x slower).
        "bf16_variants": sorted(TRAINED_VARIANTS),
        "delta_sha256": toxicity_minilm.delta_sha256(),
        "seed": seed,
    }
    write_manifest(target, manifest, started, "dev toxicity checkpoints")
    return target / CHECKPOINT_NAME


DEV_TOXICITY = DevBuild("toxicity", DEV_TOXICITY_RECIPE, build_dev_toxicity, "detoxify-format dev checkpoints")
"""The dev toxicity build `guard models build-dev` runs after the generators."""
