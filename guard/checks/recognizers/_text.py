"""Helpers and word lists the recognizers share: word sets, capitalisation, span overlap, presidio results."""

from __future__ import annotations

import re
from collections.abc import Iterable

from presidio_analyzer import EntityRecognizer, RecognizerResult

__all__ = [
    "NOT_PLACES",
    "ORG_WORDS",
    "PARTICLES",
    "TITLE",
    "is_capitalised",
    "overlaps",
    "recognizer_result",
    "title_start",
    "word_set",
]


def word_set(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text`` (how the word lists are written)."""
    return frozenset(text.split())


def is_capitalised(word: str) -> bool:
    """Starts with an upper-case letter, or a letter of a script without case (Greek capitals count as upper)."""
    first = word[:1]
    return bool(first) and first.isalpha() and not first.islower()


PARTICLES = word_set(
    """de du des la le les del della dei di da do dos das van von der den ten ter y e el al of the t 't"""
)
NOT_PLACES = word_set(
    """monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
    september october november december please phone mobile desk fax tel email e-mail website office i we you he
    she they it the a an and or but"""
)


TITLE = (
    r"(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Lady|Lord|Rev|Fr|Capt|Col|Sgt|Lt|Hon|Herr|Frau|Mme|Mlle|Sig|Sr|Sra|Srta"
    r"|Dhr|Mevr|Ing|Avv|Dott)\.?|Sig\.ra|Sig\.na|Dott\.ssa|Prof\.ssa|M\.)"
)
"""Courtesy and professional titles written before a name (English, German, French, Italian, Spanish, Dutch)."""
_TITLES_BEFORE = re.compile(rf"(?:(?<![\w.]){TITLE}\s+)+$")


def title_start(text: str, start: int) -> int:
    """Where a name starting at ``start`` starts once the titles written just before it are included ("Dr" in
    "Dr Ana Ruiz"): the data sets and a reader count a title as part of the name it introduces."""
    match = _TITLES_BEFORE.search(text, max(0, start - 24), start)
    return match.start() if match else start


ORG_WORDS = word_set(
    """inc inc. ltd ltd. llc plc corp corp. corporation company co co. group holdings holding fund trust bank
    limited partners capital systems technologies technology energy ag sa nv gmbh etf bancorp reit university
    institute association foundation ministry department agency hotel hotels airlines international financial
    tech solutions industries"""
)
"""Words that end a company's name ("Ltd", "Fund", "Holdings"): a name before one is an organisation."""


def overlaps(span: tuple[int, int], spans: Iterable[tuple[int, int]]) -> bool:
    """Whether ``span`` shares a character with any of ``spans``."""
    return any(span[0] < end and span[1] > start for start, end in spans)


def recognizer_result(
    entity: str, start: int, end: int, score: float, recognizer: EntityRecognizer, rule: str
) -> RecognizerResult:
    """A presidio result naming the recognizer and the ``rule`` that found it (kept in the finding's detail)."""
    return RecognizerResult(
        entity_type=entity,
        start=start,
        end=end,
        score=score,
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
            "rule": rule,
        },
    )
