# ruff: noqa: RUF001  # en and em dashes are field separators in the text this recognizer reads
"""People and places named by a form's field labels: "Account holder: Ana Ruiz", "Birthplace - Ulm", "Payee = ...".

A labelled field says what its value is better than a small NER model reading a fragment without a sentence around
it (spaCy tags "Birthplace" or "IBAN" as people and a town named after a saint as a person). The label decides the
type; the value is the run of capitalised words after it (titles, name particles and hyphens included), up to the
next separator, lower-case word or digit. Labels are ordinary English form vocabulary, written here; values are never
looked up in a list, and filler answers ("Unknown", "None", "See attached") are not values.
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guard.checks.recognizers._text import PARTICLES, TITLE, recognizer_result, word_set

__all__ = ["FIELD_SCORE", "FormFieldRecognizer"]

FIELD_SCORE = 0.92
"""Above spaCy (0.85) and the name cues (0.9): the label's type and its span (title included) win an overlap."""

_PERSON_LABEL = (
    r"(?:(?:full|first|last|legal|maiden|family|given)\s+)?name|surname|applicant|(?:account\s+|card\s*|policy\s*)?holder"
    r"|beneficiary|payee|payer|claimant|tenant|landlord|lessee|lessor|guarantor|next\s+of\s+kin|emergency\s+contact"
    r"|contact\s+person|student|pupil|passenger|travell?er|insured(?:\s+person|\s+party)?|employee|patient|witness"
    r"|signed\s+by|signatory|recipient|addressee|customer|client|spouse|guardian|borrower|co-?signer|debtor"
    r"|creditor|executor|referee|dependa[nt]t|subscriber|sponsor|attendee|candidate|member|owner|driver|parent"
)
_PLACE_LABEL = (
    r"(?:place|town|city|country|county|state|province|region|village|municipality)\s+of\s+"
    r"(?:birth|residence|origin|domicile|issue)|birth\s*place|home\s*town|residence|domicile|origin|destination"
    r"|(?:bank|branch|home|birth)\s+(?:city|town)|city|town|village|county|country|region|province|municipality"
)
_SEPARATOR = r"[ \t]*(?:[:=]|[-–—](?=[ \t]))?[ \t]*"
"""A colon, an equals sign, a spaced dash, or nothing ("Passenger Ana Ruiz"); a person's label also takes an
apposition's comma ("The guarantor, Ana Ruiz, ...")."""
_WORD = r"[^\W\d_](?:[\w’'-]|\.(?=[\w-]))*\.?"
_VALUE = rf"(?:{TITLE}[ \t]+)*{_WORD}(?:[ \t]+{_WORD}){{0,6}}"
_FIELD = re.compile(
    rf"(?<![\w-])(?:(?P<person>(?i:{_PERSON_LABEL}))(?:'s)?(?:[ \t]+(?i:name))?\b(?:[ \t]*,)?"
    rf"|(?P<place>(?i:{_PLACE_LABEL}))\b){_SEPARATOR}(?P<value>{_VALUE})"
)
_FILLERS = word_set(
    """none unknown n/a na nil same see as not tbd tbc pending approved rejected declined yes no other business
    personal private head main various withheld redacted given attached below above required optional individual
    any all same-as"""
)
"""Answers that are not names: a field filled with one of these names nobody."""
_FORM_NOUNS = word_set(
    """service services team portal support care account number id name status type details information record
    records form office department desk centre center agreement policy id. no no. code date reference signature
    address phone email"""
)
"""Nouns that follow a role word in ordinary titles ("Customer Service", "Member Portal"), ending a value."""


_NAME_BEFORE = re.compile(r"(?<![\w'’-])(?!(?:The|A|An|Our|Your|My|His|Her|Their|Its)\b)[^\W\d_a-z][\w'’-]*[ \t]+$")
"""A capitalised word (not a determiner) right before the label on the same line."""
_NOT_IN_NAMES = frozenset({"of", "the"})
"""Particles of place names ("Isle of Man") that end a person's name ("Ana Ruiz of Lugo")."""
_ABBREVIATION = re.compile(rf"{TITLE}|[A-Z]\.|(?:[A-Za-z]+\.){{2,}}|[A-Z][a-z]?[A-Z]+\.")
"""A word whose full stop is its own: a title, an initial, a dotted degree ("B.A.", "MBA.")."""


class FormFieldRecognizer(LocalRecognizer):  # type: ignore[misc]
    """The values of person and place fields of a form, typed by their label."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["PERSON", "LOCATION"], supported_language=supported_language, name="FormFieldRecognizer"
        )

    def load(self) -> None:
        """Rules only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        results = []
        position = 0
        while (match := _FIELD.search(text, position)) is not None:
            entity = "PERSON" if match.group("person") else "LOCATION"
            start = position = match.start("value")  # the next label may sit inside what the regex took as value
            if _NAME_BEFORE.search(text, max(0, match.start() - 40), match.start()):
                continue  # the label word is part of a name: "Albany Country Club", "Orange County"
            span = _value_span(match.group("value"), PARTICLES - _NOT_IN_NAMES if entity == "PERSON" else PARTICLES)
            if span is not None:
                position = start + span[1]
                if entity in entities:
                    results.append(recognizer_result(entity, start + span[0], position, FIELD_SCORE, self, "field"))
        return results


def _value_span(value: str, particles: frozenset[str]) -> tuple[int, int] | None:
    """The name in a field's value: capitalised words (particles inside), cut at the first other word or after a
    word ending a sentence."""
    words = list(re.finditer(r"\S+", value))
    kept: list[re.Match[str]] = []
    for word in words:
        bare = word.group().rstrip(".").lower()
        if bare in _FORM_NOUNS or (not word.group()[0].isupper() and not (kept and bare in particles)):
            break
        kept.append(word)
        if word.group().endswith(".") and not _ABBREVIATION.fullmatch(word.group()):
            break
    while kept and kept[-1].group().lower() in particles:
        kept.pop()
    if not kept or all(w.group().rstrip(".").lower() in _FILLERS for w in kept) or kept[0].group().lower() in _FILLERS:
        return None
    end = kept[-1].end()
    if value[end - 1] == "." and not _ABBREVIATION.fullmatch(kept[-1].group()):
        end -= 1  # a sentence's full stop, not an initial's or a degree's ("B.A.")
    return kept[0].start(), end
