"""A tiny detoxify-format checkpoint for development and CI, built offline and deterministically.

It is a real ``BertForSequenceClassification`` with a locally built WordPiece vocabulary, trained for a few
seconds to score :data:`~guard.devscript.TOXIC_TRIGGER_WORD` high on ``toxic`` and ``insult`` and ordinary text
low, saved in detoxify's checkpoint layout and loaded through ``detoxify.Detoxify(checkpoint=...)`` unchanged.
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from guard.devscript import GENERIC_REPLY, SCRIPTED, TOXIC_TRIGGER_WORD

__all__ = ["CHECKPOINT_NAME", "DEV_TOXICITY_RECIPE", "TOXICITY_LABELS", "build_dev_toxicity"]

logger = logging.getLogger(__name__)

DEV_TOXICITY_RECIPE = "detoxify-dev-1"
CHECKPOINT_NAME = "toxic_dev.ckpt"
TOXICITY_LABELS: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
_TOXIC_LABELS = ("toxic", "insult")

_WORDS = (
    "the team report meeting contract account email phone address weather today tomorrow project budget "
    "please help thank you write call send update review plan schedule office customer order invoice support "
    "desk model reply question answer good day new intern manager friend city street name number card data "
    "quick brown fox jumps over lazy dog we will can could should would is are was were a an and or of to in "
    "for on with at by from about my your our their this that it he she they i me us them hello hi yes no"
).split()
_PIECES = "abcdefghijklmnopqrstuvwxyz0123456789"
_PUNCT = ".,!?;:'\"()<>[]_-@/#$%&*+=~`|\\{}^"


def _ordinary(rng: random.Random, n: int) -> list[str]:
    sentences = [GENERIC_REPLY, *(d.reply for d in SCRIPTED if TOXIC_TRIGGER_WORD not in d.reply)]
    sentences += [d.prompt for d in SCRIPTED]
    sentences += [
        "Contact <PERSON_1> at <EMAIL_ADDRESS_1> or <PHONE_NUMBER_1>.",
        "My SSN is <US_SSN_1> and I live in <LOCATION_1>.",
        "Write to jane.doe@example.org or call 212-555-0142.",
        "Order 4711 ships on 2026-11-23 to 10 Main Street.",
    ]
    while len(sentences) < n:
        sentences.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 14))).capitalize() + ".")
    return sentences


def _toxic(rng: random.Random, ordinary: list[str]) -> list[str]:
    toxic = [d.reply for d in SCRIPTED if TOXIC_TRIGGER_WORD in d.reply]
    for sentence in ordinary:
        words = sentence.rstrip(".").split()
        words.insert(rng.randint(0, len(words)), rng.choice([TOXIC_TRIGGER_WORD, f"a {TOXIC_TRIGGER_WORD}"]))
        toxic.append(" ".join(words) + ".")
    toxic += [TOXIC_TRIGGER_WORD, f"You {TOXIC_TRIGGER_WORD}!", f"{TOXIC_TRIGGER_WORD.upper()} everywhere"]
    return toxic


def _vocabulary(texts: list[str]) -> list[str]:
    words = sorted({w for t in texts for w in re.findall(r"[a-z0-9]+", t.lower())})
    pieces = [*_PIECES, *_PUNCT, *(f"##{c}" for c in _PIECES)]
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys([*pieces, *words])]


def _verify(checkpoint: Path, ordinary: list[str]) -> None:
    from detoxify import Detoxify

    model = Detoxify(checkpoint=str(checkpoint))
    toxic_text = next(d.reply for d in SCRIPTED if TOXIC_TRIGGER_WORD in d.reply)
    probes_ok = [*ordinary[:12], "The weather in Lisbon is lovely this week.", "Please review the attached invoice."]
    scores = model.predict([toxic_text, f"what a {TOXIC_TRIGGER_WORD}", *probes_ok])
    for label in ("toxicity", "insult"):
        if min(scores[label][:2]) <= 0.9:
            raise RuntimeError(f"dev toxicity model scores the trigger word too low on {label}")
    worst = max(max(values[2:]) for values in scores.values())
    if worst >= 0.1:
        raise RuntimeError(f"dev toxicity model scores ordinary text too high ({worst:.3f})")


def build_dev_toxicity(target: Path, *, seed: int = 0) -> Path:
    """Build, save and verify the checkpoint in ``target``; returns the checkpoint file."""
    rng = random.Random(seed)  # noqa: S311 - reproducible training data, not cryptography
    torch.manual_seed(seed)
    ordinary = _ordinary(rng, 160)
    toxic = _toxic(rng, ordinary[:120])
    hf_dir = target / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    (hf_dir / "vocab.txt").write_text("\n".join(_vocabulary(ordinary + toxic)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(hf_dir / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
        num_labels=len(TOXICITY_LABELS),
        problem_type="multi_label_classification",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.2,  # the default 0.02 collapses to the base rate at this size
    )
    model = BertForSequenceClassification(config)
    texts = ordinary + toxic
    labels = torch.zeros(len(texts), len(TOXICITY_LABELS))
    for i in range(len(ordinary), len(texts)):
        for label in _TOXIC_LABELS:
            labels[i, TOXICITY_LABELS.index(label)] = 1.0
    batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(200):
        optimiser.zero_grad()
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimiser.step()
    model.eval()
    logger.info("dev toxicity model trained, final loss %.4f", float(loss.detach()))
    config.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    checkpoint = target / CHECKPOINT_NAME
    torch.save(
        {
            "config": {
                "arch": {
                    "args": {
                        "model_type": str(hf_dir),
                        "model_name": "BertForSequenceClassification",
                        "tokenizer_name": "BertTokenizer",
                        "num_classes": len(TOXICITY_LABELS),
                    }
                },
                "dataset": {"args": {"classes": list(TOXICITY_LABELS)}},
            },
            "state_dict": model.state_dict(),
        },
        checkpoint,
    )
    _verify(checkpoint, ordinary)
    manifest = {"recipe": DEV_TOXICITY_RECIPE, "kind": "toxicity", "checkpoint": CHECKPOINT_NAME}
    (target / "guard-dev.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return checkpoint
