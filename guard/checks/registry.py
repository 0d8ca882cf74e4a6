"""The checks by name: the pipeline looks up the check for each policy section here (a dict, not an if-chain), and
whether a policy can run with them is asked here (:meth:`CheckRegistry.validate`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from guard.checks.base import Check, CheckUnavailable
from guard.checks.injection import InjectionCheck
from guard.checks.judge import Judge, JudgeScorer
from guard.checks.ngram import NgramClassifier
from guard.checks.pii import PiiCheck
from guard.checks.prohibited import ProhibitedUseCheck
from guard.checks.secrets import SecretsCheck
from guard.checks.semantic import EmbeddingClassifier, SafetyEncoder
from guard.checks.toxicity import ToxicityCheck
from guard.errors import GuardError
from guard.policy import LoadedPolicy

__all__ = ["CheckModels", "CheckRegistry", "PolicyCannotRun"]


class PolicyCannotRun(CheckUnavailable, GuardError):
    """A policy names a layer the loaded checks cannot run; ``reason`` says which and how to get it."""

    def __init__(self, policy: LoadedPolicy, reason: str) -> None:
        super().__init__(f"policy {policy.name!r}: {reason}")
        self.policy = policy
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CheckModels:
    """Which models the checks load: the spaCy model for presidio and the detoxify checkpoints (None = production)."""

    spacy_model: str
    toxicity_checkpoints: Mapping[str, Path] | None
    """The dev detoxify checkpoint of each variant (None = detoxify's official weights)."""
    prohibited_weights: Path | None = None
    """The prohibited-use classifier's fine-tuned layers and heads (None = those shipped in policies/prohibited/)."""
    prohibited_ngram_weights: Path | None = None
    """Its ja/ko/zh character n-gram layer (None = the one shipped in policies/prohibited/)."""
    judge: JudgeScorer | None = None
    """The prohibited-use judge's scorer (guard.engine.ShieldGemmaScorer, loaded by the pipeline from
    GUARD_JUDGE_MODEL); None runs without the judge layer, which policies requiring it refuse."""
    toxicity_variants: tuple[str, ...] = ("original",)
    """detoxify variants loaded at startup (those the loaded policies use); any other is loaded on first use."""
    toxicity_bf16: frozenset[str] = frozenset()
    """Dev checkpoint variants run in bfloat16 (their build's manifest says so; ~2.5x faster on CPU)."""
    pii_hash_key: bytes | None = None
    """Key of the PII ``hash`` action's HMAC (≥ 16 bytes); None = a random key, so hashes change on restart."""
    pii_recognizers_dir: Path | None = None
    """The PII check's YAML recognizers (None = the shipped policies/recognizers/)."""


class CheckRegistry(Mapping[str, Check]):
    """Loaded checks keyed by their policy section name (``pii``, ``secrets``, ``prohibited_use``, ``toxicity``...)."""

    def __init__(self, checks: list[Check], descriptions: dict[str, str]) -> None:
        self._checks = {check.name: check for check in checks}
        self.descriptions = descriptions

    @classmethod
    def load(cls, models: CheckModels) -> CheckRegistry:
        pii = PiiCheck.load(
            models.spacy_model, hash_key=models.pii_hash_key, recognizers_dir=models.pii_recognizers_dir
        )
        toxicity = ToxicityCheck.load(models.toxicity_checkpoints, models.toxicity_variants, models.toxicity_bf16)
        encoder = SafetyEncoder.load(models.prohibited_weights)  # one encoder pass serves both classifiers
        injection = InjectionCheck(classifier=encoder)
        secrets = SecretsCheck.load()
        prohibited = ProhibitedUseCheck(
            EmbeddingClassifier(encoder),
            Judge(models.judge) if models.judge is not None else None,
            NgramClassifier.load(models.prohibited_ngram_weights),  # ja/ko/zh requests, which MiniLM cannot read
        )
        return cls(
            [pii, secrets, prohibited, toxicity, injection],
            {
                "pii": "presidio + " + ", ".join(f"{lang}: {model}" for lang, model in pii.pipelines.items()),
                "secrets": secrets.description,
                "prohibited_use": prohibited.description,
                "toxicity": toxicity.description,
                "injection": injection.layers,
            },
        )

    def validate(self, loaded: LoadedPolicy) -> None:
        """Raise :class:`PolicyCannotRun` unless every layer ``loaded`` names can run with these checks: its
        prohibited-use layers on both stages (an embedding head, a judge it requires) and every detoxify variant its
        output routes to. Those variants are loaded now (as startup does), not on a request's path."""
        prohibited, toxicity = self._checks.get("prohibited_use"), self._checks.get("toxicity")
        injection = self._checks.get("injection")
        policy = loaded.policy
        try:
            for stage in (policy.input, policy.output):
                if stage.prohibited_use is not None and isinstance(prohibited, ProhibitedUseCheck):
                    prohibited.validate(stage.prohibited_use)
            if policy.input.injection is not None and isinstance(injection, InjectionCheck):
                injection.validate(policy.input.injection)
            if policy.output.toxicity is not None and isinstance(toxicity, ToxicityCheck):
                for variant in sorted(policy.output.toxicity.variants()):
                    toxicity.model(variant)
        except (CheckUnavailable, FileNotFoundError, ValueError) as exc:
            raise PolicyCannotRun(loaded, str(exc)) from None

    def __getitem__(self, name: str) -> Check:
        return self._checks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._checks)

    def __len__(self) -> int:
        return len(self._checks)
