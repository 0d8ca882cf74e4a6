"""Identifiers typed by the words in front of them, and e-mail addresses and phone numbers spelled to evade.

A nine-digit number is a phone number, a passport, a driver licence, a bank account or an SSN depending on what the
sentence calls it; presidio's own recognizers for passports, licences and bank accounts score too low to pass a
threshold without a lucky context word, so the phone recognizer used to win. Here an identifier-shaped token right
after its label ("passport no.", "driver's licence", "account number", "NHS number", "SSN", "ITIN", "phone") is
reported as that type with a score above the format-only recognizers, so the overlap goes to the label's type; the
value must still have the type's shape (NHS numbers their modulus-11 check digit, ITINs their IRS group range).

Obfuscated e-mail addresses (``john.doe [at] example [dot] com``, ``jane(at)mail(dot)org``,
``user@example[DOT]com``) and phone numbers spelled in words (``four one five ...``) are found in the text as sent,
so their offsets need no mapping.
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guard.checks.recognizers._text import recognizer_result

__all__ = ["CONTEXT_ID_SCORE", "ContextIdRecognizer", "valid_itin", "valid_nhs"]

CONTEXT_ID_SCORE = 0.95
"""Above the phone, card and NER recognizers (≤ 0.9): a labelled identifier is what its label says."""
OBFUSCATED_SCORE = 0.9

_GAP = r"[^\S\n]*(?:(?:number|num|no\.?|nr\.?|#|is|was|are|:|=|-|of|on file|reads?)[^\S\n]*){0,3}"
"""Between a label and its value: "passport no. is", "licence number:", "SSN #"."""
_LABELS: tuple[tuple[str, str, str], ...] = (
    ("US_PASSPORT", r"passport", r"[A-Z]?\d{8,9}"),
    (
        "US_DRIVER_LICENSE",
        r"driver'?s?[\s-]+licen[cs]e|driving[\s-]+licen[cs]e|\bDL\b|\bD\.L\.",
        r"(?=[A-Z0-9]*\d)[A-Z]{0,3}[A-Z0-9]{4,14}",
    ),
    (
        "US_BANK_NUMBER",
        r"(?:bank|checking|cheque|savings|deposit)?[\s-]*(?:account|acct\.?|a/c)",
        r"\d{6,17}",
    ),
    ("UK_NHS", r"\bNHS", r"\d{3}[ -]?\d{3}[ -]?\d{4}"),
    ("US_ITIN", r"\bITIN\b|taxpayer identification", r"9\d{2}[ .-]?\d{2}[ .-]?\d{4}"),
    ("US_SSN", r"\bSSN\b|social[\s-]+security", r"\d{3}[ .-]?\d{2}[ .-]?\d{4}"),
    (
        "PHONE_NUMBER",
        r"\b(?:phone|mobile|cell|tel\.?|telephone|call me (?:at|on)|text me (?:at|on))",
        r"\+?\(?\d[\d ().-]{6,18}\d",
    ),
)
_LABELLED = [
    (entity, re.compile(rf"(?i:{label}){_GAP}(?P<value>{value})(?![\w-])")) for entity, label, value in _LABELS
]
_ITIN = re.compile(r"(?<![\w-])9\d{2}([ .-]?)(?:5\d|6[0-5]|7\d|8[0-8]|9[0-2]|9[4-9])\1\d{4}(?![\w-])")
_TLD = r"(?:com|org|net|edu|gov|io|co|uk|de|fr|nl|es|it|ca|au|info|biz|me|us|ac\.uk|co\.uk)"
_AT = r"(?:\s*(?:\[at\]|\(at\)|\{at\}|<at>)\s*|\s+at\s+|@)"
_DOT = r"(?:\s*(?:\[dot\]|\(dot\)|\{dot\}|<dot>)\s*|\s+dot\s+|\.)"
_OBFUSCATED_EMAIL = re.compile(rf"(?<![\w.+-])[\w.+-]+{_AT}[\w-]+(?:{_DOT}[\w-]+)*?{_DOT}{_TLD}\b", re.IGNORECASE)
_SPELLED_DIGIT = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
_SPELLED_NUMBER = re.compile(rf"(?i)\b{_SPELLED_DIGIT}(?:[\s,-]+{_SPELLED_DIGIT}){{6,14}}\b")


def valid_nhs(value: str) -> bool:
    """The NHS number's modulus-11 check digit."""
    digits = [int(char) for char in value if char.isdigit()]
    if len(digits) != 10:
        return False
    check = 11 - sum(d * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True)) % 11
    return (0 if check == 11 else check) == digits[9]


def valid_itin(value: str) -> bool:
    """An IRS individual taxpayer identification number: 9XX, group 50-65, 70-88, 90-92 or 94-99."""
    return _ITIN.fullmatch(value) is not None


def _is_obfuscated(value: str) -> bool:
    """Something beyond a plain address: a spelled or bracketed ``at``/``dot`` (plain ones are presidio's)."""
    return re.fullmatch(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", value) is None


class ContextIdRecognizer(LocalRecognizer):  # type: ignore[misc]
    """Labelled identifiers typed by their label; obfuscated e-mail addresses; phone numbers spelled in words."""

    ENTITIES = ["US_PASSPORT", "US_DRIVER_LICENSE", "US_BANK_NUMBER", "UK_NHS", "US_ITIN", "US_SSN", "PHONE_NUMBER"]

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=[*self.ENTITIES, "EMAIL_ADDRESS"],
            supported_language=supported_language,
            name="ContextIdRecognizer",
        )

    def load(self) -> None:
        """Rules only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for entity, pattern in _LABELLED:
            for match in pattern.finditer(text):
                value = match.group("value")
                kind = entity
                if kind in ("US_SSN", "US_ITIN"):
                    kind = "US_ITIN" if valid_itin(value) else "US_SSN" if not value.startswith("9") else ""
                if kind == "UK_NHS" and not valid_nhs(value):
                    continue
                if kind in entities:
                    start, end = match.span("value")
                    results.append(recognizer_result(kind, start, end, CONTEXT_ID_SCORE, self, "labelled"))
        if "US_ITIN" in entities:
            for match in _ITIN.finditer(text):
                results.append(recognizer_result("US_ITIN", *match.span(), CONTEXT_ID_SCORE - 0.1, self, "itin_range"))
        if "EMAIL_ADDRESS" in entities:
            for match in _OBFUSCATED_EMAIL.finditer(text):
                if _is_obfuscated(match.group()):
                    results.append(recognizer_result("EMAIL_ADDRESS", *match.span(), OBFUSCATED_SCORE, self, "spelled"))
        if "PHONE_NUMBER" in entities:
            for match in _SPELLED_NUMBER.finditer(text):
                results.append(recognizer_result("PHONE_NUMBER", *match.span(), OBFUSCATED_SCORE, self, "spelled"))
        return results
