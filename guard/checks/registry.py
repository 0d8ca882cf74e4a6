"""The checks by name: the pipeline looks up the check for each policy section here (a dict, not an if-chain)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from guard.checks.base import Check
from guard.checks.pii import PiiCheck
from guard.checks.prohibited import ProhibitedUseCheck
from guard.checks.toxicity import ToxicityCheck

__all__ = ["CheckModels", "CheckRegistry"]


@dataclass(frozen=True, slots=True)
class CheckModels:
    """Which models the checks load: the spaCy model for presidio and the detoxify checkpoint (None = production)."""

    spacy_model: str
    toxicity_checkpoint: Path | None


class CheckRegistry(Mapping[str, Check]):
    """Loaded checks keyed by their policy section name (``pii``, ``prohibited_use``, ``toxicity``)."""

    def __init__(self, checks: list[Check], descriptions: dict[str, str]) -> None:
        self._checks = {check.name: check for check in checks}
        self.descriptions = descriptions

    @classmethod
    def load(cls, models: CheckModels) -> CheckRegistry:
        pii = PiiCheck.load(models.spacy_model)
        toxicity = ToxicityCheck.load(models.toxicity_checkpoint)
        return cls(
            [pii, ProhibitedUseCheck(), toxicity],
            {"pii": f"presidio + spaCy {pii.spacy_model}", "toxicity": toxicity.description},
        )

    def __getitem__(self, name: str) -> Check:
        return self._checks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._checks)

    def __len__(self) -> int:
        return len(self._checks)
