"""Phone numbers in any national format (replaces presidio's ``PhoneRecognizer``, which knows eight regions)."""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guard.checks.recognizers._text import recognizer_result

__all__ = ["LenientPhoneRecognizer"]

_PHONE_CANDIDATE = re.compile(
    r"(?<![\w@/+.-])"
    r"(?:(?:\+|00)\d{1,3}[ .-]?)?"
    r"(?:\(\d{1,5}\)[ .-]?|\(0\)\s?)?"
    r"\d{1,5}(?:[ .-]?\(?\d{1,5}\)?){1,5}"
    r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?"
    r"(?![\w@]|[.-]\d)"
)
_PHONE_CONTEXT = re.compile(
    r"\b(?:phone|telephone|tel|mobile|cell|cellphone|call|calling|ring|text|sms|whatsapp|fax|desk|office|home|work|"
    r"contact|reach|dial|hotline|line|number|ext|extension|messages?|answering|landline)\b",
    re.IGNORECASE,
)
_NOT_PHONE = [
    re.compile(r"\d{4}-\d{2}-\d{2}.*"),  # ISO date
    re.compile(r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}"),  # other dates
    re.compile(r"\d{1,3}(?:\.\d{1,3}){3}"),  # IPv4
    re.compile(r"\d{3}-\d{2}-\d{4}"),  # US SSN shape
]
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "CA", "BR", "IL", "CH", "AU", "IT", "ES", "NL", "SE", "JP", "CN", "KR")


def _phone_digits(candidate: str) -> str:
    return re.sub(r"\D", "", re.split(r"\s?(?:x|ext\.?)\s?\d", candidate, maxsplit=1)[0])


class LenientPhoneRecognizer(LocalRecognizer):  # type: ignore[misc]
    """Phone numbers in any written form (replaces presidio's, which validates for eight regions only).

    A digit-group candidate (6-15 digits) is reported with a phone word within a few words before it or right
    after it ("call me on", "Mobile:", "... fax"), in international form (``+41 ...``) when phonenumbers finds it
    possible, or when it is a valid number of a common region. Dates, IPv4 addresses and SSN shapes are not phones.
    """

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["PHONE_NUMBER"], supported_language=supported_language, name="PhoneRecognizer"
        )

    def load(self) -> None:
        """Rules and phonenumbers' metadata only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if "PHONE_NUMBER" not in entities:
            return []
        results = []
        for match in _PHONE_CANDIDATE.finditer(text):
            candidate = match.group().rstrip(" .-(")
            start, end = match.start(), match.start() + len(candidate)
            if candidate.startswith("(") and ")" not in candidate:
                start, candidate = start + 1, candidate[1:]
            digits = _phone_digits(candidate)
            if not 6 <= len(digits) <= 15 or any(p.fullmatch(candidate) for p in _NOT_PHONE):
                continue
            score = self._score(text, start, end, candidate, digits)
            if score:
                results.append(recognizer_result("PHONE_NUMBER", start, end, score, self, "phone"))
        return results

    @staticmethod
    def _score(text: str, start: int, end: int, candidate: str, digits: str) -> float:
        before = text[max(0, start - 40) : start]
        after = text[end : end + 12]
        context = bool(_PHONE_CONTEXT.search(" ".join(before.split()[-5:]))) or bool(
            _PHONE_CONTEXT.match(after.lstrip(" -:\\,"))
        )
        separated = bool(re.search(r"[ .()-]", candidate))
        if context and (len(digits) >= 7 or separated):
            return 0.75
        if _valid_phone(candidate):
            return 0.6
        return 0.0


def _valid_phone(candidate: str) -> bool:
    import phonenumbers

    if candidate.startswith(("+", "00")):
        try:
            number = phonenumbers.parse("+" + candidate.lstrip("+0") if candidate.startswith("00") else candidate)
        except phonenumbers.NumberParseException:
            return False
        return bool(phonenumbers.is_valid_number(number))
    for region in _PHONE_REGIONS:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number) and len(_phone_digits(candidate)) >= 9:
            return True
    return False
