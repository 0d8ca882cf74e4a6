"""IBANs in print and electronic form, cut where the checksum says they end (replaces presidio's ``IbanRecognizer``).

Presidio's registry runs its IBAN regex case-insensitively, so a grouped IBAN followed by a word ("IBAN DE03 5250
3039 7295 1279 27 belongs to...") takes the word's first letters as a last group, fails the checksum and is lost.
Here a candidate is any run of two letters, two check digits and 11-32 more alphanumerics (spaces or dashes allowed
between them); it is cut back group by group to the longest prefix that presidio's own validator accepts (the
country's format and ISO 7064 mod 97-10).
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import IbanRecognizer

from guard.checks.recognizers._text import recognizer_result

__all__ = ["IBAN_SCORE", "GroupedIbanRecognizer"]

IBAN_SCORE = 1.0
"""A checksum-valid IBAN is certain, as in presidio."""

_CANDIDATE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?:[ -]?[A-Za-z0-9]){11,32}")
_MIN_LENGTH = 15
"""The shortest IBAN (Norway) has 15 characters."""


class GroupedIbanRecognizer(LocalRecognizer):  # type: ignore[misc]
    """IBANs, compact or grouped, cut to their checksum-valid length; registered under presidio's name."""

    def __init__(self, supported_language: str = "en") -> None:
        # exact_match: the whole cut, not a prefix of it, must have the country's format
        self._validator = IbanRecognizer(supported_language=supported_language, exact_match=True)
        super().__init__(supported_entities=["IBAN_CODE"], supported_language=supported_language, name="IbanRecognizer")

    def load(self) -> None:
        """Rules only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if "IBAN_CODE" not in entities:
            return []
        results = []
        for match in _CANDIDATE.finditer(text):
            candidate = match.group()
            for end in _group_ends(candidate):
                if self._validator.validate_result(candidate[:end].upper()):  # its format table is upper-case
                    start = match.start()
                    results.append(recognizer_result("IBAN_CODE", start, start + end, IBAN_SCORE, self, "iban"))
                    break
        return results


def _group_ends(candidate: str) -> list[int]:
    """Where the candidate may end, longest first: after an alphanumeric followed by a separator or the end."""
    ends = [
        i + 1
        for i, char in enumerate(candidate)
        if char.isalnum() and (i + 1 == len(candidate) or not candidate[i + 1].isalnum())
    ]
    return [end for end in reversed(ends) if sum(char.isalnum() for char in candidate[:end]) >= _MIN_LENGTH]
