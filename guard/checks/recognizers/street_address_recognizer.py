"""Street addresses (see :mod:`guard.checks.recognizers.address_parser`) reported as LOCATION."""

from __future__ import annotations

from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guard.checks.recognizers._text import recognizer_result
from guard.checks.recognizers.address_parser import find_street_addresses

__all__ = ["ADDRESS_SCORE", "StreetAddressRecognizer"]

ADDRESS_SCORE = 0.9
"""Above spaCy's 0.85, so a 'person' spaCy sees inside an address loses the overlap."""


class StreetAddressRecognizer(LocalRecognizer):  # type: ignore[misc]
    """Street addresses (house number or PO box through postcode), reported as LOCATION."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["LOCATION"], supported_language=supported_language, name="StreetAddressRecognizer"
        )

    def load(self) -> None:
        """Rules only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if "LOCATION" not in entities:
            return []
        return [
            recognizer_result("LOCATION", s, e, ADDRESS_SCORE, self, "street_address")
            for s, e in find_street_addresses(text)
        ]
