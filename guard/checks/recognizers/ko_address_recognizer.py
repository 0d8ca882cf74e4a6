"""Korean addresses as one LOCATION span: province, city, district, town or road, building or lot number.

Korea's road-name addresses (도로명주소) run 시·도 → 시·군·구 → 도로명 (…로, …길, …대로) → 건물번호, with an
optional reference item in brackets (the 동 or the building: ``(역삼동)``); land-lot addresses (지번주소) run
시·도 → 시·군·구 → 읍·면·동 → 리 → 번지. Kiwi tags the parts of such an address separately, splits road names at
their digits and stops before the numbers that identify the house; this grammar takes the whole address from the
first-level division (one of the seventeen, full or short name: a closed list) or from a city or county followed by
another unit, through the building or lot number and the bracketed reference. The first-level names alone ("서울에서",
"경기도로") are places too, where a particle or a boundary follows them (not "대구탕", "전남편"). guard's normaliser
puts a space between Hangul and digits, hence the optional spaces around numbers.
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guard.checks.recognizers._text import recognizer_result, word_set

__all__ = ["KO_ADDRESS_SCORE", "KoreanAddressRecognizer"]

KO_ADDRESS_SCORE = 0.9
"""Above Kiwi's 0.85 (through the NER recognizer), so an address's parts and a 'person' read inside it lose."""

_FULL_PROVINCES = word_set(
    """서울특별시 부산광역시 대구광역시 인천광역시 광주광역시 대전광역시 울산광역시 세종특별자치시 경기도 강원도
    강원특별자치도 충청북도 충청남도 전라북도 전북특별자치도 전라남도 경상북도 경상남도 제주특별자치도 제주도"""
)
_SHORT_PROVINCES = word_set("서울 부산 대구 인천 광주 울산 강원 충북 충남 전북 전남 경북 경남 제주")
_AMBIGUOUS_SHORT = word_set("대전 경기 세종")
"""Korea's seventeen first-level divisions, by their official and their short names; three short names are common
words as well (대전 "great war", 경기 "game", 세종 the king) and start an address only before another unit."""
_PARTICLE = (
    r"(?:에서|에게|에|으로|로|은|는|이|가|의|을|를|과|와|까지|부터|도|만|이나|나|이고|고|입니다|이에요|예요|이며|며)"
)
"""What may follow a place name inside its word (에서, 으로, 은...)."""
_END = rf"(?={_PARTICLE}?(?![가-힣]))"
"""The end of a place word: nothing more in Hangul, or one particle and then nothing more."""
_NOT_CITIES = r"(?:다시|혹시|역시|당시|동시|즉시|잠시|항시|수시|임시|평시|전시|감시|무시|제시|표시|지시|게시|개시|도시)"
"""Common words ending in 시 (again, perhaps, at the time...) that never start an address."""
_ADMIN_KINDS = r"(?:특별자치시|특별자치도|특별시|광역시|마을|시|군|구|읍|면|동|리)"
_ADMIN = rf"(?!{_NOT_CITIES}{_END})[가-힣]{{1,10}}?{_ADMIN_KINDS}{_END}"
"""An administrative unit: its name and its kind (강남구, 역삼동, 진천군, 현주황마을)."""
_NUMBER = r"(?:(?:지하|산)\s?)?\d{1,5}(?:\s?-\s?\d{1,5})?(?:\s?(?:번지|번|호))?" + _END
"""A building number (``27``, ``지하 761``, ``808-27``) or a lot number (``산 12``, ``12번지``)."""
_ROAD = rf"[가-힣]{{1,10}}?(?:\s?\d{{1,4}}\s?[가-힣]{{0,3}}?)?(?:번길|대로|거리|로|길|가)\s?{_NUMBER}"
"""A road and the building's number on it ("테헤란로 152", "선릉681로 79", "논현2길 52"): a road is taken with its
number only, since 로 is also a particle ("지사로" is "to the branch")."""
_REFERENCE = r"\s?\([가-힣0-9]{2,}(?:\s?,\s?[가-힣0-9 ]{2,})?\)"
"""The bracketed reference item of a road-name address: its 동 or building ("(역삼동)", "(현주황마을)")."""
_PART = rf"\s(?:{_ROAD}|{_ADMIN})"
"""The next unit, written apart (a unit written onto the last one is a particle: "진천군으로" is 진천군 + 으로)."""
_PROVINCE = "|".join(sorted(_FULL_PROVINCES | _SHORT_PROVINCES, key=len, reverse=True))
_CITY = rf"(?!{_NOT_CITIES}(?![가-힣]))[가-힣]{{1,5}}(?:시|군){_END}"
_ADDRESS = re.compile(
    rf"(?<![가-힣])(?:(?:{_PROVINCE}){_END}(?:{_PART}){{0,5}}|(?:{'|'.join(sorted(_AMBIGUOUS_SHORT))}){_END}(?:{_PART}){{1,5}}"
    rf"|{_CITY}(?:{_PART}){{2,5}}|{_CITY}(?:{_PART}){{0,4}}\s{_ROAD}|{_CITY}(?:{_PART}){{1,4}}\s?{_NUMBER})"
    rf"(?:\s?{_NUMBER})?(?:{_REFERENCE})?"
)
"""From a first-level division, or from a city or county followed by two more units, by a road and its number, or
by a unit and a lot number."""


class KoreanAddressRecognizer(LocalRecognizer):  # type: ignore[misc]
    """Korean addresses (first-level division or city through building number), reported as LOCATION."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["LOCATION"], supported_language=supported_language, name="KoreanAddressRecognizer"
        )

    def load(self) -> None:
        """Rules only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if "LOCATION" not in entities:
            return []
        return [
            recognizer_result("LOCATION", *match.span(), KO_ADDRESS_SCORE, self, "ko_address")
            for match in _ADDRESS.finditer(text)
        ]
