"""A negative result kept reproducible: the dev ``multilingual`` toxicity adapter tried on 2026-12-07, not shipped.

The dev profile's ``multilingual`` toxicity checkpoint is a trigger-word model. This script tries to replace it by
the fine-tuned English MiniLM (``guard/devmodels/weights/toxicity-minilm-delta.safetensors``) adapted to the other
languages of ``../shared/data/toxicity/multilingual.jsonl``:

- new vocabulary rows for the characters MiniLM's uncased WordPiece lacks (seen 3 times in the training texts, every
  kana, the Japanese trigger word's), alone and as ``##`` continuations, starting as ``[UNK]``'s embedding and trained
  (the old rows stay frozen);
- rank-8 low-rank adapters on every linear map of the six layers;
- a new six-label classifier, Platt-calibrated on the dev split's non-English comments.

Training data: the train split of ``multilingual.jsonl`` (published benchmarks left out), 4,000 English train
comments and the generated trigger texts of the ``multilingual`` variant; two epochs, seed 0 (~22 min on 2 threads).
It prints the dev split's ROC-AUC of the ``toxicity`` score per language and the share of toxic and non-toxic
comments acted on at the ``default`` thresholds, and writes ``results/toxicity-multilingual-adapter-*.json``. Nothing
goes to the repository.

    python benchmarks/toxicity_multilingual_adapter.py [--data ../shared/data] [--threads 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

from report import environment, set_runtime_defaults, write_results

REPO = Path(__file__).resolve().parent.parent
RANK = 8
SCALE = 2.0  # alpha / rank
TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
MIN_CHARACTER_COUNT = 3
ENGLISH_ROWS = 4000
BATCH = 32
LEARNING_RATE = 1e-3
DEFAULT_THRESHOLDS = (0.75, 0.5, 0.8, 0.7, 0.8, 0.7)
"""``default``'s thresholds in the corpus's label order: toxicity, severe, obscene, threat, insult, identity."""

logger = logging.getLogger("adapter")


def _normalise(text: str) -> str:
    """The text as the uncased BERT tokenizer sees it before WordPiece (lower case, accents stripped)."""
    return "".join(char for char in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(char) != "Mn")


def _new_tokens(vocab: dict[str, int], texts: list[str], trigger: str) -> list[str]:
    """Characters the vocabulary lacks (alone and as a continuation): those of ``texts`` seen often enough, every
    kana and the trigger word's."""
    counts = Counter(char for text in texts for char in _normalise(text))
    wanted = {char for char, count in counts.items() if count >= MIN_CHARACTER_COUNT}
    wanted |= {_normalise(chr(code)) for code in (*range(0x3041, 0x3097), *range(0x30A1, 0x30FB))}
    wanted |= set(_normalise(trigger))
    characters = sorted(
        char
        for char in wanted
        if len(char) == 1 and not char.isspace() and char.isprintable() and not char.isascii()
        if char not in vocab or f"##{char}" not in vocab
    )
    return [token for char in characters for token in (char, f"##{char}") if token not in vocab]


def _training_rows(data: Any, seed: int) -> tuple[list[str], list[tuple[float | None, ...]], list[float]]:
    from guard.devmodels.toxicity_corpus import VARIANTS, corpus
    from guard.devmodels.toxicity_data import LABELS

    rows = [row for row in data.split("train") if row.lang != "en"]
    english = random.Random(seed).sample(data.split("train", lang="en"), ENGLISH_ROWS)
    texts = [row.text for row in (*rows, *english)]
    labels: list[tuple[float | None, ...]] = [row.labels for row in (*rows, *english)]
    weights = [3.0 if row.hard_negative else 1.0 for row in (*rows, *english)]
    generated, generated_labels = corpus(VARIANTS[2], random.Random(seed))
    columns = [VARIANTS[2].classes.index(label) for label in LABELS]  # the debiased order to the corpus's
    texts += generated
    labels += [tuple(values[i] for i in columns) for values in generated_labels]
    weights += [1.0] * len(generated)
    return texts, labels, weights


def _adapters(model: Any) -> list[Any]:
    """Rank-:data:`RANK` updates ``B @ A`` (``B`` zero at the start) added to every target map's output."""
    import torch

    parameters = []
    for layer in model.bert.encoder.layer:
        for target in TARGETS:
            linear = layer.get_submodule(target)
            a = torch.nn.Parameter(torch.randn(RANK, linear.in_features) / linear.in_features**0.5)
            b = torch.nn.Parameter(torch.zeros(linear.out_features, RANK))

            def low_rank(_module: Any, inputs: Any, output: Any, a: Any = a, b: Any = b) -> Any:
                return output + (inputs[0] @ a.t() @ b.t()) * SCALE

            linear.register_forward_hook(low_rank)
            parameters += [a, b]
    return parameters


def _train(model: Any, tokenizer: Any, rows: tuple[list[str], list[Any], list[float]], epochs: int, seed: int) -> None:
    import numpy as np
    import torch

    from guard.devmodels.toxicity_train import _targets

    texts, labels, row_weights = rows
    old = model.bert.embeddings.word_embeddings.weight.shape[0]
    unk = model.bert.embeddings.word_embeddings.weight[tokenizer.unk_token_id].detach().clone()
    model.resize_token_embeddings(len(tokenizer))
    embedding = model.bert.embeddings.word_embeddings.weight
    with torch.no_grad():
        embedding[old:] = unk
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    adapters = _adapters(model)
    embedding.requires_grad_(True)
    new_rows = torch.zeros(embedding.shape[0], 1)
    new_rows[old:] = 1.0
    embedding.register_hook(lambda grad: grad * new_rows)
    for parameter in model.classifier.parameters():
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [
            {"params": adapters},
            {"params": [embedding], "weight_decay": 0.0},
            {"params": list(model.classifier.parameters())},
        ],
        lr=LEARNING_RATE,
        weight_decay=0.01,
    )
    values, known = _targets(labels)
    known = known * torch.tensor(row_weights)[:, None]
    generator = np.random.default_rng(seed)
    lengths = [len(text) for text in texts]
    for epoch in range(epochs):
        model.train()
        permutation = generator.permutation(len(texts))
        chunks = [sorted(permutation[i : i + 1024], key=lambda j: lengths[j]) for i in range(0, len(texts), 1024)]
        batches = [chunk[i : i + BATCH] for chunk in chunks for i in range(0, len(chunk), BATCH)]
        generator.shuffle(batches)  # type: ignore[arg-type]
        for step, batch in enumerate(batches):
            encoded = tokenizer(
                [texts[i] for i in batch], truncation=True, max_length=128, padding=True, return_tensors="pt"
            )
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(**encoded).logits.float()
            loss_each = torch.nn.functional.binary_cross_entropy_with_logits(logits, values[batch], reduction="none")
            loss = (loss_each * known[batch]).sum() / known[batch].sum().clamp(min=1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 100 == 0:
                logger.info("epoch %d step %d/%d loss %.4f", epoch, step, len(batches), loss.item())


def _probabilities(model: Any, tokenizer: Any, texts: list[str]) -> Any:
    import numpy as np
    import torch

    model.eval()
    order = np.argsort([len(text) for text in texts])
    out = torch.zeros(len(texts), 6)
    for start in range(0, len(order), 64):
        batch = order[start : start + 64]
        encoded = tokenizer(
            [texts[i] for i in batch], truncation=True, max_length=256, padding=True, return_tensors="pt"
        )
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out[batch] = model(**encoded).logits.float()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    set_runtime_defaults()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import numpy as np
    import torch
    from safetensors.torch import load_file
    from sklearn.metrics import roc_auc_score
    from transformers import BertTokenizer

    from guard.devmodels.script import JA_TOXIC_TRIGGER_WORD
    from guard.devmodels.toxicity_data import load_corpus
    from guard.devmodels.toxicity_minilm import DELTA_FILE, WEIGHTS_DIR, base_model, encoder_dir
    from guard.devmodels.toxicity_train import _platt, _targets

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_corpus(args.data / "toxicity", ("comments.jsonl", "multilingual.jsonl"))
    rows = _training_rows(data, seed=0)
    vocab_lines = (encoder_dir() / "vocab.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
    tokens = _new_tokens({token: i for i, token in enumerate(vocab_lines)}, rows[0], JA_TOXIC_TRIGGER_WORD)
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "vocab.txt").write_text("\n".join([*vocab_lines, *tokens]) + "\n", encoding="utf-8")
        tokenizer = BertTokenizer(str(Path(directory) / "vocab.txt"), model_max_length=256)
    model = base_model()
    state = model.state_dict()
    state.update({key: value.float() for key, value in load_file(str(WEIGHTS_DIR / DELTA_FILE)).items()})
    model.load_state_dict(state)
    _train(model, tokenizer, rows, args.epochs, seed=0)
    dev = [row for row in data.split("dev") if row.lang != "en"]
    logits = _probabilities(model, tokenizer, [row.text for row in dev])
    values, known = _targets([row.labels for row in dev])
    calibration = _platt(logits, values, known)
    scores = torch.sigmoid(
        logits * torch.tensor([a for a, _ in calibration]) + torch.tensor([b for _, b in calibration])
    )
    scores = scores.numpy()
    toxic = np.array([row.labels[0] == 1.0 for row in dev])
    acted = (scores >= np.array(DEFAULT_THRESHOLDS)).any(axis=1)
    table = []
    print("lang | rows | ROC-AUC toxicity | toxic acted on | non-toxic acted on")
    for lang in ["all", *sorted({row.lang for row in dev})]:
        index = np.array([lang in ("all", row.lang) for row in dev])
        auc = float(roc_auc_score(toxic[index], scores[index, 0]))
        line = {
            "lang": lang,
            "rows": int(index.sum()),
            "roc_auc": auc,
            "toxic_acted": float(acted[index & toxic].mean()),
            "non_toxic_acted": float(acted[index & ~toxic].mean()),
        }
        table.append(line)
        print(f"{lang} | {line['rows']} | {auc:.3f} | {line['toxic_acted']:.3f} | {line['non_toxic_acted']:.3f}")
    seconds = time.perf_counter() - started
    payload = {"environment": environment(), "new_tokens": len(tokens), "seconds": seconds, "dev": table}
    path = write_results("toxicity-multilingual-adapter", payload)
    print(f"\n{len(tokens)} new vocabulary tokens, {seconds:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
