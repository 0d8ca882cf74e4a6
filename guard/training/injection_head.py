"""Refit the injection head on the shipped encoder (``guard models refit-injection``; minutes, not the 40 of a full
retrain): the fine-tuned layers and the prohibited-use heads stay as they are, so one encoder pass still serves both.

Why: trained with the encoder on the injection corpus alone, the head had seen few ordinary requests that *ask for
something to be changed* — and scored "My name is … my SSN is … please update my account." 0.93, above the
``default`` policy's 0.9: a customer-support message blocked as an instruction override. The refit adds, to the
benign class, the English benign and borderline requests of the prohibited-use corpus (its train split) and our
own support-desk and look-alike messages (``guard/training/data/injection_benign.jsonl``, train only), beside the
injection corpus's train split. A logistic regression on the encoder's embeddings (scikit-learn, L-BFGS:
deterministic), classes balanced, temperature-calibrated on the dev splits of both corpora.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from guard.checks.semantic import SafetyEncoder
from guard.training.injection_data import load_injection
from guard.training.prohibited_data import WRITTEN_DIR, load_corpus

__all__ = ["refit_injection_head"]

logger = logging.getLogger(__name__)

REGULARISATION = 1.0
"""Inverse L2 strength (scikit-learn's ``C``) on the 384 embedding dimensions."""
HARMFUL = frozenset({"injection", "jailbreak", "indirect_injection"})


def _rows(data_dir: Path, split: str) -> list[tuple[str, int, str]]:
    """(text, 1 for an injection, kind) of ``split``: the injection corpus, English requests of the prohibited-use
    corpus as benign, and (train only) our own benign messages."""
    rows = [
        (row.text, int(row.label in HARMFUL), f"injection:{row.label}{':hard' if row.hard_negative else ''}")
        for row in load_injection(data_dir / "injection").split(split)
    ]
    rows += [
        (row.text, 0, f"prohibited:{row.kind}")
        for row in load_corpus(data_dir / "prohibited").select("requests", split, lang="en")
        if not row.harmful
    ]
    if split == "train":
        lines = (WRITTEN_DIR / "injection_benign.jsonl").read_text(encoding="utf-8").splitlines()
        rows += [(json.loads(line)["text"], 0, "written:benign") for line in lines if line.strip()]
    return rows


def _temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    def loss(temperature: float) -> float:
        p = np.clip(1.0 / (1.0 + np.exp(-logits / temperature)), 1e-6, 1 - 1e-6)
        return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))

    return float(minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded").x)


def refit_injection_head(weights: Path, data_dir: Path, threshold: float, out: Path | None = None) -> dict[str, Any]:
    """Refit ``head.injection`` of ``weights`` from ``data_dir`` (``../shared/data``) and write the result to ``out``
    (default: ``weights`` itself), with dev figures at ``threshold`` in the training manifest beside it."""
    target = out or weights
    from safetensors import safe_open
    from safetensors.torch import save_file
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    encoder = SafetyEncoder.load(weights)
    train, dev = _rows(data_dir, "train"), _rows(data_dir, "dev")
    x_train = encoder.embed([text for text, _, _ in train])
    x_dev = encoder.embed([text for text, _, _ in dev])
    y_train = np.asarray([label for _, label, _ in train])
    y_dev = np.asarray([label for _, label, _ in dev])
    model = LogisticRegression(C=REGULARISATION, class_weight="balanced", max_iter=5000).fit(x_train, y_train)
    temperature = _temperature(model.decision_function(x_dev), y_dev)
    # Two-class softmax with the benign logit 0 is the logistic regression: row 0 zeros, row 1 its coefficients.
    weight = np.zeros((2, x_train.shape[1]), dtype=np.float32)
    weight[1] = model.coef_[0] / temperature
    bias = np.asarray([0.0, model.intercept_[0] / temperature], dtype=np.float32)
    with safe_open(str(weights), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    import torch

    tensors["head.injection.weight"] = torch.from_numpy(weight)
    tensors["head.injection.bias"] = torch.from_numpy(bias)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(dict(sorted(tensors.items())), str(target), metadata=metadata)
    refit = SafetyEncoder.load(target).heads["injection"]
    flagged = (1.0 - refit.probabilities(x_dev)[:, 0]) >= threshold
    by_kind: dict[str, list[bool]] = {}
    for (_, _, kind), hit in zip(dev, flagged, strict=True):
        by_kind.setdefault(kind, []).append(bool(hit))
    report = {
        "rule": "logistic regression on the shipped encoder's embeddings, classes balanced, temperature on dev",
        "regularisation_C": REGULARISATION,
        "temperature": round(temperature, 4),
        "train_rows": {kind: sum(1 for _, _, k in train if k == kind) for kind in sorted({k for _, _, k in train})},
        "dev_flagged_at": threshold,
        "dev": {kind: round(float(np.mean(hits)), 4) for kind, hits in sorted(by_kind.items())},
        "seconds": round(time.perf_counter() - started, 1),
    }
    source_manifest = weights.with_name(f"{weights.stem}-training.json")
    manifest: dict[str, Any] = json.loads(source_manifest.read_text(encoding="utf-8"))
    manifest["injection_head_refit"] = report
    manifest["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    target.with_name(f"{target.stem}-training.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("refit the injection head of %s into %s in %.0f s", weights, target, report["seconds"])
    return manifest
