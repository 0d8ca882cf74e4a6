"""Toxicity with detoxify's own ``Detoxify`` class: three model variants, language routing, per-label thresholds.

Each text goes to the variant its policy names for the text's language (``model``, ``languages``, ``non_english``;
the language from :func:`guard.checks.language.identify_language`: ja/ko/zh by script, other languages by
py3langid). The items of one ``run()`` call are grouped by variant and each variant scores its group in one
``predict(list)``. Every label's score is recorded in
``CheckResult.scores``; each label at or above its threshold is a finding whose ``detail`` names the variant.

Production loads each variant's official checkpoint from the torch hub cache (``guard models pull`` places them
there); the dev profile loads the dev checkpoints ``guard models build-dev`` trains, as :mod:`guard.models` lists
them from the build's manifest. Variants named at load time are loaded then (so that a missing one fails at
startup), the others on first use.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from guard.checks.base import CheckItem, CheckResult, CheckUnavailable, Finding
from guard.checks.language import identify_language, language_identifier
from guard.policy.schema import TOXICITY_MODEL_LABELS, ToxicityConfig

__all__ = ["HF_BASE_MODELS", "PRODUCTION_CHECKPOINTS", "ToxicityCheck"]

PRODUCTION_CHECKPOINTS: dict[str, str] = {
    "original": "toxic_original-c1212f89.ckpt",
    "unbiased": "toxic_debiased-c7548aa0.ckpt",
    "multilingual": "multilingual_debiased-0b549669.ckpt",
}
"""Each variant's official weights (the file names of ``detoxify.detoxify.MODEL_URLS``), in the torch hub cache."""

HF_BASE_MODELS: dict[str, str] = {
    "original": "bert-base-uncased",
    "unbiased": "roberta-base",
    "multilingual": "xlm-roberta-base",
}
"""The Hugging Face model whose config and tokenizer each official checkpoint names (``arch.args.model_type``)."""

_Model = Any  # detoxify.Detoxify, imported lazily (torch and transformers are heavy)


def _production_model(variant: str) -> _Model:
    import torch
    from detoxify import Detoxify

    cached = Path(torch.hub.get_dir()) / "checkpoints" / PRODUCTION_CHECKPOINTS[variant]
    if not cached.is_file():
        raise CheckUnavailable(
            f"detoxify {variant!r} weights not found at {cached}: run `guard models pull` on a connected machine "
            "(or copy the file there) for an air-gapped install"
        )
    try:
        return Detoxify(variant)
    except OSError as exc:
        raise CheckUnavailable(
            f"detoxify's tokenizer/config ({HF_BASE_MODELS[variant]}) is not in the Hugging Face cache ({exc}): "
            "run `guard models pull`"
        ) from None


def _dev_loader(checkpoints: Mapping[str, Path], bf16: frozenset[str] = frozenset()) -> Callable[[str], _Model]:
    """Loads each variant's dev checkpoint from ``checkpoints`` (what the build's manifest lists, read by
    :func:`guard.models.dev_toxicity_checkpoints`); the ``bf16`` variants' weights are cast to bfloat16 (detoxify's
    ``predict`` reads the sigmoid back as Python floats either way)."""

    def load(variant: str) -> _Model:
        from detoxify import Detoxify

        if variant not in checkpoints:
            raise CheckUnavailable(
                f"the dev toxicity build in {_build_dir(checkpoints)} has no {variant!r} checkpoint: run "
                "`guard models build-dev`"
            )
        checkpoint = checkpoints[variant]
        if not checkpoint.is_file():
            raise CheckUnavailable(f"dev toxicity checkpoint {checkpoint} not found: run `guard models build-dev`")
        model = Detoxify(checkpoint=str(checkpoint))
        if variant in bf16:
            import torch

            model.model.to(torch.bfloat16)
        return model

    return load


def _build_dir(checkpoints: Mapping[str, Path]) -> str:
    """The directory holding every checkpoint of a dev build."""
    return os.path.commonpath([str(path.parent) for path in checkpoints.values()]) if checkpoints else "(none)"


class ToxicityCheck:
    name: ClassVar[str] = "toxicity"

    def __init__(self, loader: Callable[[str], _Model], source: str) -> None:
        self._loader = loader
        self._source = source
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        checkpoints: Mapping[str, Path] | None = None,
        variants: Iterable[str] = ("original",),
        bf16: frozenset[str] = frozenset(),
    ) -> ToxicityCheck:
        """The dev checkpoints ``checkpoints`` (variant → file; the ``bf16`` ones run in bfloat16), or detoxify's
        official weights from the torch hub cache (``None``); ``variants`` are loaded now, the others on first use."""
        if checkpoints is None:
            check = cls(_production_model, "detoxify")
        else:
            check = cls(_dev_loader(checkpoints, bf16), f"detoxify dev checkpoints in {_build_dir(checkpoints)}")
        for variant in variants:
            check.model(variant)
        language_identifier()
        return check

    @property
    def description(self) -> str:
        loaded = ", ".join(sorted(self._models)) or "none"
        return f"{self._source} (loaded: {loaded})"

    def model(self, variant: str) -> _Model:
        """The variant's model, loaded on first use (once, whichever thread asks first)."""
        if variant not in TOXICITY_MODEL_LABELS:
            raise ValueError(f"unknown detoxify variant {variant!r}")
        with self._lock:
            if variant not in self._models:
                self._models[variant] = self._loader(variant)
            return self._models[variant]

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        groups: defaultdict[str, list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            config: ToxicityConfig = item.config
            if config.enabled:
                groups[_variant(item.text, config)].append(index)
        results = [CheckResult() for _ in items]
        for variant, indices in groups.items():
            predicted = self.model(variant).predict([items[index].text for index in indices])
            columns = {label: values if isinstance(values, list) else [values] for label, values in predicted.items()}
            for row, index in enumerate(indices):
                scores = {label: round(float(values[row]), 4) for label, values in columns.items()}
                results[index] = self._result(items[index], variant, scores)
        return results

    def _result(self, item: CheckItem, variant: str, scores: dict[str, float]) -> CheckResult:
        config: ToxicityConfig = item.config
        findings = tuple(
            Finding(
                check=self.name,
                type=label,
                score=scores[label],
                threshold=threshold,
                action=config.action,
                start=0,
                end=len(item.text),
                stage=item.stage,
                detail=f"detoxify:{variant}",
            )
            for label, threshold in config.thresholds.items()
            if label in scores and scores[label] >= threshold
        )
        return CheckResult(findings=findings, scores=scores)


def _variant(text: str, config: ToxicityConfig) -> str:
    if not config.languages and config.non_english is None:
        return config.model
    return config.variant_for(identify_language(text))
