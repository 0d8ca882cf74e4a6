"""Output toxicity with detoxify's own ``Detoxify`` class; each label at or above its threshold is a finding."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from guard.checks.base import CheckItem, CheckResult, CheckUnavailable, Finding
from guard.policy import ToxicityConfig

__all__ = ["PRODUCTION_CHECKPOINT", "ToxicityCheck"]

PRODUCTION_CHECKPOINT = "toxic_original-c1212f89.ckpt"
"""detoxify's ``original`` weights; ``guard models pull`` places them in the torch hub cache."""


class ToxicityCheck:
    name: ClassVar[str] = "toxicity"

    def __init__(self, model: object, description: str) -> None:
        self._model = model
        self.description = description

    @classmethod
    def load(cls, checkpoint: Path | None = None) -> ToxicityCheck:
        """The dev checkpoint at ``checkpoint``, or detoxify's ``original`` model from the torch hub cache."""
        import torch
        from detoxify import Detoxify

        if checkpoint is not None:
            if not checkpoint.is_file():
                raise CheckUnavailable(f"dev toxicity checkpoint {checkpoint} not found: run `guard models build-dev`")
            return cls(Detoxify(checkpoint=str(checkpoint)), f"detoxify dev checkpoint {checkpoint.name}")
        cached = Path(torch.hub.get_dir()) / "checkpoints" / PRODUCTION_CHECKPOINT
        if not cached.is_file():
            raise CheckUnavailable(
                f"detoxify 'original' weights not found at {cached}: run `guard models pull` on a connected "
                "machine (or copy the file there) for an air-gapped install"
            )
        try:
            model = Detoxify("original")
        except OSError as exc:
            raise CheckUnavailable(
                f"detoxify's tokenizer/config (bert-base-uncased) is not in the Hugging Face cache ({exc}): "
                "run `guard models pull`"
            ) from None
        return cls(model, "detoxify original")

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        if not items:
            return []
        texts = [item.text for item in items]
        scores: dict[str, list[float]] = {
            label: values if isinstance(values, list) else [values]
            for label, values in self._model.predict(list(texts)).items()  # type: ignore[attr-defined]
        }
        results = []
        for i, item in enumerate(items):
            config: ToxicityConfig = item.config
            findings = tuple(
                Finding(
                    check=self.name,
                    type=label,
                    score=round(float(scores[label][i]), 4),
                    threshold=threshold,
                    action=config.action,
                    start=0,
                    end=len(item.text),
                    stage=item.stage,
                )
                for label, threshold in config.thresholds.items()
                if label in scores and scores[label][i] >= threshold
            )
            results.append(CheckResult(findings=findings))
        return results
