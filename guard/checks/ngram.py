"""The classifier layer of prohibited use for Japanese, Korean and Chinese requests: character n-grams.

all-MiniLM-L6-v2 reads English only (its vocabulary splits these scripts into single characters and jamo), and no
multilingual sentence encoder installs from the registries here. Character 1-3-grams carry these languages' words
without a segmenter: a linear softmax over hashed n-gram counts (the ``request`` head's classes: benign + the Gemma
categories), trained on the public ja/ko/zh rows of ``../shared/data/prohibited`` by ``guard models train-ngram``
(:mod:`guard.training.ngram`), temperature-calibrated on their dev split.

Its scores feed the same policy thresholds as the encoder's ``request`` head. Each language gets a benign-logit
offset set on the dev split (as the encoder's languages do), so that the policy's threshold keeps that language's
false positives within bounds. Answers are not read (no ja/ko/zh answers to train on beyond a hundred Chinese ones):
the deny rules and, in production, the judge stay the output layers for these languages.

The weights file holds only the n-grams training saw (a bucket never seen keeps a zero row), so it stays small.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guard.checks.base import CheckUnavailable
from guard.checks.language import detect_language
from guard.checks.semantic import Head, default_weights_path

__all__ = ["NGRAM_FORMAT", "NGRAM_WEIGHTS_FILE", "NgramClassifier", "NgramFeatures", "normalise"]

NGRAM_FORMAT = "guard-ngram-1"
NGRAM_WEIGHTS_FILE = Path("prohibited") / "ngram-cjk.safetensors"
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC (full-width forms to their ASCII, half-width kana to full), lower case, one space between words."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


@dataclass(frozen=True, slots=True)
class NgramFeatures:
    """Hashed character n-gram counts (scikit-learn's stateless ``HashingVectorizer``: the same buckets in training
    and at inference, with nothing to fit or store but these parameters), rows scaled to unit length."""

    buckets: int = 2**18
    smallest: int = 1
    largest: int = 3

    def vectorizer(self) -> Any:
        from sklearn.feature_extraction.text import HashingVectorizer

        return HashingVectorizer(
            analyzer="char",
            ngram_range=(self.smallest, self.largest),
            n_features=self.buckets,
            alternate_sign=False,
            preprocessor=normalise,
        )

    def transform(self, texts: Sequence[str]) -> Any:
        """A sparse (texts x buckets) matrix."""
        return self.vectorizer().transform(list(texts))

    def metadata(self) -> dict[str, int]:
        return {"buckets": self.buckets, "smallest": self.smallest, "largest": self.largest}


class NgramClassifier:
    """Category scores of ja/ko/zh requests from their character n-grams."""

    def __init__(self, features: NgramFeatures, head: Head, languages: dict[str, float], sha256: str) -> None:
        self.features = features
        self.head = head
        self.languages = languages
        """The languages read, each with its benign-logit offset (set on the dev split)."""
        self.sha256 = sha256

    @classmethod
    def load(cls, path: Path | None = None) -> NgramClassifier:
        """The shipped (or ``path``'s) weights: the seen buckets' rows, the bias, the classes and the features."""
        from safetensors import safe_open
        from safetensors.numpy import load

        path = path or default_weights_path(NGRAM_WEIGHTS_FILE)
        if not path.is_file():
            raise CheckUnavailable(
                f"ja/ko/zh prohibited-use classifier weights {path} not found: they ship in policies/prohibited/; "
                "rebuild them with `guard models train-ngram`"
            )
        raw = path.read_bytes()
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
        if meta.get("format") != NGRAM_FORMAT:
            raise CheckUnavailable(f"{path} is not a {NGRAM_FORMAT} file: rebuild it with `guard models train-ngram`")
        tensors = load(raw)
        features = NgramFeatures(**json.loads(meta["features"]))
        classes = tuple(json.loads(meta["classes"]))
        rows, values, bias = tensors["rows"], tensors["values"].astype(np.float32), tensors["bias"].astype(np.float32)
        if values.shape != (len(rows), len(classes)) or bias.shape != (len(classes),) or rows.max() >= features.buckets:
            raise CheckUnavailable(f"{path}: its rows, classes and buckets do not match; rebuild it")
        weight = np.zeros((len(classes), features.buckets), dtype=np.float32)
        weight[:, rows] = values.T
        languages = {str(k): float(v) for k, v in json.loads(meta["languages"]).items()}
        return cls(features, Head(classes, weight, bias), languages, hashlib.sha256(raw).hexdigest())

    @property
    def description(self) -> str:
        return f"char n-grams ({'/'.join(sorted(self.languages))}) {self.sha256[:12]}"

    def reads(self, text: str) -> bool:
        return detect_language(text) in self.languages

    def scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Every category's score per text (the harmful mass for the most likely category, as the encoder's heads)."""
        if not texts:
            return []
        offsets = [self.languages.get(detect_language(text), 0.0) for text in texts]
        return self.head.category_scores(self.features.transform(texts), offsets)
