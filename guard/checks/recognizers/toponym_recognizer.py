"""Town names by their shape: "Port Justin", "Lake Amanda", "East Mistyborough", "Charlesmouth" (LOCATION).

English-speaking countries name towns after people with a directional or water word before the name ("North",
"Port", "Lake", "Mount") or a settlement ending after it (-ville, -borough, -burgh, -mouth, -haven, -stad...).
spaCy's small model reads the person's name inside such a town and tags a PERSON. These two toponymic patterns,
written from English place-name formation (no gazetteer), type the whole as a place. Ordinary words with those
endings ("Support", "Review", "Inside") are excluded, and a suffixed word right after another capitalised word or a
title is left alone: it is a surname there ("Ray Bradbury").
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guard.checks.recognizers._text import NOT_PLACES, ORG_WORDS, TITLE, recognizer_result, word_set

__all__ = ["TOPONYM_SCORE", "ToponymRecognizer"]

TOPONYM_SCORE = 0.88
"""Above spaCy's 0.85 (the 'person' it reads inside the town loses), below a labelled field or a name cue (0.9)."""

_CAP = r"[^\W\d_a-z][\w'’-]*"  # noqa: RUF001  # a curly apostrophe inside names
_PREFIX = r"(?:North|South|East|West|Port|Lake|Mount|Fort|New|(?:Mt|Ft|St|Ste|Pt)\.?)"
"""Directional and water words, and the abbreviations of Mount, Fort, Saint and Point ("St. Ives", "Ft Myers")."""
_SUFFIX = (
    r"(?:town|ville|borough|burgh|burg|bury|mouth|haven|stad|furt|chester|port|side|view|fort|berg|shire|dorf"
    r"|hausen|heim|stadt|minster|caster|cester)"
)
_PREFIXED = re.compile(rf"(?<![\w-]){_PREFIX}[ \t]+(?P<name>{_CAP})")
_SUFFIXED = re.compile(rf"(?<![\w-])[^\W\d_a-z][a-z]+{_SUFFIX}(?![\w-])")
_ORDINARY = word_set(
    """support supports report reports passport passports airport airports transport export import sport sports seaport
    review reviews preview overview interview webview inside outside beside upside downside offside bedside seaside
    countryside poolside roadside fireside comfort effort iceberg downtown uptown hometown township newport"""
)
"""Ordinary words with a settlement ending (and "Newport", also a surname) that are not taken on their own."""
_NOT_AFTER_NEW = word_set(
    """year years feature features version release account customer user users message messages order orders
    member members balance deal age wave testament world look window tab file project issue item items password"""
)
"""Words after "New" that make an ordinary phrase ("New Year", "New Features"), not a town."""
_NEXT_CAPITALISED = re.compile(rf"[ \t]+{_CAP}")
_BEFORE = re.compile(rf"(?:{TITLE}|{_CAP})[ \t]+$")


class ToponymRecognizer(LocalRecognizer):  # type: ignore[misc]
    """Towns named with a directional/water prefix or a settlement suffix, reported as LOCATION."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["LOCATION"], supported_language=supported_language, name="ToponymRecognizer"
        )

    def load(self) -> None:
        """Rules only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if "LOCATION" not in entities:
            return []
        found: list[tuple[int, int]] = []
        for match in _PREFIXED.finditer(text):
            name = match.group("name").lower()
            if name not in NOT_PLACES and (not match.group().startswith("New") or name not in _NOT_AFTER_NEW):
                found.append(match.span())
        for match in _SUFFIXED.finditer(text):
            inside = any(start <= match.start() < end for start, end in found)
            if not inside and match.group().lower() not in _ORDINARY and not _BEFORE.search(text, 0, match.start()):
                found.append(match.span())
        return [
            recognizer_result("LOCATION", start, end, TOPONYM_SCORE, self, "toponym")
            for start, end in found
            if not _NEXT_CAPITALISED.match(text, end)  # part of a longer name: "Batenburg Techniek", "West Ltd"
            and text[start:end].rsplit(maxsplit=1)[-1].lower() not in ORG_WORDS
        ]
