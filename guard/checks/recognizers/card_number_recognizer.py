"""Card numbers of every issuer range and length 12-19, Luhn-validated (replaces presidio's
``CreditCardRecognizer``, whose pattern covers only some prefixes and lengths)."""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guard.checks.recognizers._text import recognizer_result

__all__ = ["CardNumberRecognizer"]

_CARD_CANDIDATE = re.compile(
    r"(?<![\d+.-])(?:\d{12,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5})(?![\d-]|\.\d)"
)
_CARD_CONTEXT = re.compile(
    r"\b(?:card|credit|debit|cc|visa|mastercard|amex|discover|jcb|maestro|diners|payment)\b", re.I
)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _issuer_range(digits: str) -> bool:
    """A number in an issuer's range (IIN) with a length that issuer uses."""
    length, two, four, six = len(digits), int(digits[:2]), int(digits[:4]), int(digits[:6])
    return bool(
        (digits[0] == "4" and length in (13, 16, 19))  # Visa
        or ((51 <= two <= 55 or 2221 <= four <= 2720) and length == 16)  # Mastercard
        or (two in (34, 37) and length == 15)  # American Express
        or (
            (four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649 or 622126 <= six <= 622925)
            and 16 <= length <= 19
        )
        or (3528 <= four <= 3589 and 16 <= length <= 19)  # JCB
        or (four in (2131, 1800) and length == 15)  # JCB (old ranges)
        or ((300 <= int(digits[:3]) <= 305 or two in (36, 38, 39) or four == 3095) and 14 <= length <= 19)  # Diners
        or ((two == 50 or 56 <= two <= 69) and 12 <= length <= 19)  # Maestro, UnionPay (62), RuPay (60)
        or (2200 <= four <= 2204 and 16 <= length <= 19)  # Mir
    )


class CardNumberRecognizer(LocalRecognizer):  # type: ignore[misc]
    """Card numbers of every issuer range, 12-19 digits, plain or grouped, Luhn-valid (replaces presidio's)."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["CREDIT_CARD"], supported_language=supported_language, name="CreditCardRecognizer"
        )

    def load(self) -> None:
        """Rules only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if "CREDIT_CARD" not in entities:
            return []
        results = []
        for match in _CARD_CANDIDATE.finditer(text):
            digits = re.sub(r"\D", "", match.group())
            if not _luhn(digits):
                continue
            if _issuer_range(digits):
                score = 1.0
            elif _CARD_CONTEXT.search(text[max(0, match.start() - 40) : match.start()]):
                score = 0.6  # Luhn-valid, unknown range, but the text calls it a card
            else:
                continue
            results.append(recognizer_result("CREDIT_CARD", match.start(), match.end(), score, self, "credit_card"))
        return results
