"""Japanese addresses as one LOCATION span: prefecture, municipality, town, block (``石川県香取市台東29丁目16番13号``).

GiNZA tags the parts of an address separately (a prefecture, a city, sometimes a town as a *Station*) and stops
before the block numbers, which identify the house; this grammar takes the whole address, from the prefecture (or a
designated city) through ``丁目``/``番``/``号`` and a building name's room number. Written from the Japanese addressing
conventions (都道府県 → 市区町村 → 町域 → 丁目・番地・号), no list of place names.
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guard.checks.recognizers._text import recognizer_result

__all__ = ["JA_ADDRESS_SCORE", "JapaneseAddressRecognizer"]

JA_ADDRESS_SCORE = 0.9
"""Above spaCy/GiNZA's 0.85, so the address's parts lose the overlap to the whole."""

_KANJI = r"[\u3005\u4e00-\u9fff\u30a0-\u30ff\u3040-\u309f]"
_PREFECTURE = rf"(?:北海道|東京都|大阪府|京都府|{_KANJI}{{2,3}}県)"
_MUNICIPALITY = rf"{_KANJI}{{1,6}}?[市区町村郡]"
_NUMBER = r"[0-9一二三四五六七八九十\u3007]+"  # fullwidth digits are ASCII after normalisation
_BLOCKS = rf"(?:\s?{_NUMBER}\s?(?:丁目|番地?|号|-|の))*(?:\s?{_NUMBER})?(?:\s?号)?"
"""Block numbers; guard's normaliser puts a space between digits and the kanji around them, hence the ``\\s?``."""
_ADDRESS = re.compile(
    rf"(?:〒?\s?\d{{3}}-?\d{{4}}\s?)?{_PREFECTURE}(?:{_MUNICIPALITY}){{0,3}}(?:{_KANJI}{{1,6}}?(?=\s?{_NUMBER}))?{_BLOCKS}"
    rf"(?:\s?{_KANJI}{{1,12}}\s?\d{{1,4}}(?:\s?号室)?)?"  # a building and its room number
)


class JapaneseAddressRecognizer(LocalRecognizer):  # type: ignore[misc]
    """Japanese postal addresses (prefecture through block numbers), reported as LOCATION."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["LOCATION"], supported_language=supported_language, name="JapaneseAddressRecognizer"
        )

    def load(self) -> None:
        """Rules only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if "LOCATION" not in entities:
            return []
        return [
            recognizer_result("LOCATION", *match.span(), JA_ADDRESS_SCORE, self, "ja_address")
            for match in _ADDRESS.finditer(text)
            if len(match.group()) > 3  # more than a bare prefecture name
        ]
