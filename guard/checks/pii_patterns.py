"""Pattern recognizers declared in YAML (policies/recognizers/*.yaml) and the fixed registry of validators they name.

A file lists recognizers (schema: :class:`guard.policy.schema.PiiRecognizerFile`): an entity, regular expressions
with scores, context words and optionally a ``validator``. Validators are code, not configuration: a YAML file can
only pick one of :data:`VALIDATORS` by name (checksums from python-stdnum, phone numbering plans from
phonenumbers). A match its validator rejects is dropped; one it accepts keeps its pattern's score, which context
words can raise, so a 12-digit number that merely passes a check digit is not treated as certain.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import phonenumbers
from presidio_analyzer import Pattern, PatternRecognizer
from stdnum.cn import ric
from stdnum.jp import in_
from stdnum.kr import rrn

from guard.policy import PolicyError
from guard.policy.schema import PiiRecognizerFile, PiiRecognizerSpec

__all__ = ["VALIDATORS", "YamlPatternRecognizer", "default_recognizers_dir", "load_recognizers"]


def _phone_in(region: str) -> Callable[[str], bool]:
    def valid(text: str) -> bool:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            return False
        return phonenumbers.is_valid_number(number) and phonenumbers.region_code_for_number(number) == region

    return valid


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "jp_my_number": in_.is_valid,
    "kr_rrn": rrn.is_valid,
    "cn_resident_id": ric.is_valid,
    "jp_phone": _phone_in("JP"),
    "kr_phone": _phone_in("KR"),
    "cn_phone": _phone_in("CN"),
}
"""Every name :data:`guard.policy.schema.PiiValidator` allows, and what it runs on the matched text."""


class YamlPatternRecognizer(PatternRecognizer):  # type: ignore[misc]  # presidio is untyped
    """A presidio pattern recognizer built from a YAML spec; its validator can reject a match, not certify it."""

    def __init__(self, spec: PiiRecognizerSpec, language: str = "en") -> None:
        super().__init__(
            supported_entity=spec.entity,
            name=spec.name,
            supported_language=language,
            patterns=[Pattern(name=p.name, regex=p.regex, score=p.score) for p in spec.patterns],
            context=list(spec.context) or None,
        )
        self._validator = VALIDATORS[spec.validator] if spec.validator else None

    @property
    def has_validator(self) -> bool:
        return self._validator is not None

    def validate_result(self, pattern_text: str) -> bool | None:
        # None keeps the pattern's score (presidio would raise a True to 1.0); False drops the match.
        if self._validator is None or self._validator(pattern_text):
            return None
        return False


def default_recognizers_dir() -> Path:
    """policies/recognizers in a source tree, or its copy inside the installed package (see pyproject.toml)."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_policies" / "recognizers", package.parent / "policies" / "recognizers"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no recognizers directory (policies/recognizers) next to the guard package")


def load_recognizers(directory: Path, language: str = "en") -> list[Any]:
    """The recognizers of every ``*.yaml`` in ``directory``, in file order; any invalid file is a PolicyError."""
    recognizers: list[Any] = []
    names: set[str] = set()
    for path in sorted(directory.glob("*.yaml")):
        try:
            parsed = msgspec.yaml.decode(path.read_bytes(), type=PiiRecognizerFile)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise PolicyError(path, str(exc)) from None
        for spec in parsed.recognizers:
            if spec.name in names:
                raise PolicyError(path, f"duplicate recognizer name {spec.name!r}")
            names.add(spec.name)
            recognizers.append(YamlPatternRecognizer(spec, language))
    return recognizers
