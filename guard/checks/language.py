"""Which language a text is written in: deterministic and offline.

:func:`detect_language` knows Gemma's seed languages only, from the script: kana → Japanese, Hangul → Korean, Han
without kana → Chinese, anything else English (the language of the checks' default models). PII recognizers and
the prohibited-use layers route by it.

:func:`identify_language` goes further for the checks whose models read other languages (detoxify's
``multilingual`` was trained on French, Spanish, Italian, Portuguese, Turkish and Russian beside English): text the
script calls English is given to py3langid's naive-Bayes identifier (langid.py's model; ~0.2 ms a text), limited
to :data:`IDENTIFIED_LANGUAGES`. It answers another language only when English is nearly ruled out, so a short or
mixed English text stays English.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal, cast, get_args

from guard.policy.schema import LanguageCode

__all__ = [
    "IDENTIFIED_LANGUAGES",
    "Language",
    "LanguageCode",
    "detect_language",
    "identify_language",
    "language_identifier",
]

Language = Literal["en", "ja", "ko", "zh"]

IDENTIFIED_LANGUAGES: tuple[LanguageCode, ...] = get_args(LanguageCode)
"""The languages :func:`identify_language` answers: the seed languages, detoxify ``multilingual``'s training
languages and other widely written ones (a text in a language outside the list gets the nearest one listed)."""

_NOT_LANGUAGE = re.compile(r"@\w+|#\w+|https?://\S+|&#?\w+;")
"""Handles, hashtags, links and HTML entities: no evidence of the language a text is written in."""
_READ_CHARS = 2000
"""Only a text's first 2,000 characters are read: detoxify reads a text's first 256 tokens (about 1,000-1,500
characters of prose), so those decide which variant should read it, and a long answer costs no more than a short
one (py3langid's time grows with the text: ~0.25 ms per 100 words)."""
_MIN_LETTERS = 10
"""Shorter texts ("ok", "Thanks!", a name) stay English: too few letters for character n-grams to tell."""
_MAX_ENGLISH_PROBABILITY = 0.05
_MIN_LANGUAGE_PROBABILITY = 0.3
"""Another language only when the identifier gives English under 0.05 and that language at least 0.3 (so that
shouted or misspelt English spread over several unlikely languages stays English). Chosen on the toxicity corpus's
train split: 23 of 17,564 English comments (4 of 7,463 toxic ones) sent elsewhere, where the 0.05 bar alone sent
58 (30), and 95-100% of the Arabic, German, French, Portuguese, Russian and Turkish ones away from English. Every
split, 0.1% and 94-100%: ``benchmarks/language_id.py``."""


def _script(char: str) -> str | None:
    code = ord(char)
    if 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9D:
        return "kana"
    if 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
        return "hangul"
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF:
        return "han"
    if char.isalpha():
        return "other"
    return None


def detect_language(text: str) -> Language:
    """``ja``/``ko``/``zh`` when at least a fifth of the letters are in that language's script, else ``en``."""
    counts = {"kana": 0, "hangul": 0, "han": 0, "other": 0}
    for char in text:
        script = _script(char)
        if script is not None:
            counts[script] += 1
    letters = sum(counts.values())
    if letters == 0:
        return "en"
    if counts["kana"] and (counts["kana"] + counts["han"]) * 5 >= letters:
        return "ja"
    if counts["hangul"] * 5 >= letters:
        return "ko"
    if counts["han"] * 5 >= letters:
        return "zh"
    return "en"


@functools.cache
def language_identifier() -> Any:
    """py3langid's identifier limited to :data:`IDENTIFIED_LANGUAGES` (ja/ko/zh come from the script), loaded once
    (~0.2 s); the toxicity check loads it at start-up so that a missing package fails then."""
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
    identifier.set_languages([code for code in IDENTIFIED_LANGUAGES if code not in ("ja", "ko", "zh")])
    return identifier


def identify_language(text: str) -> LanguageCode:
    """:func:`detect_language`'s answer, or for text it calls English the language py3langid finds, when the
    text has enough letters and English is all but ruled out; both read the first :data:`_READ_CHARS` characters."""
    text = text[:_READ_CHARS]
    seed = detect_language(text)
    if seed != "en":
        return seed
    words = _NOT_LANGUAGE.sub(" ", text)
    if sum(char.isalpha() for char in words) < _MIN_LETTERS:
        return "en"
    ranked: list[tuple[str, float]] = language_identifier().rank(words)
    language, probability = ranked[0]
    if dict(ranked).get("en", 0.0) >= _MAX_ENGLISH_PROBABILITY or probability < _MIN_LANGUAGE_PROBABILITY:
        return "en"
    return cast("LanguageCode", language)
