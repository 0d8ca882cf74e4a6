"""Which seed language a text is written in, from its script: deterministic, instant and offline.

Gemma's seed models speak English, Japanese, Korean and Chinese. Script counting tells those apart reliably
(kana → Japanese, Hangul → Korean, Han without kana → Chinese); anything else is treated as English, the
language of the checks' default models. Used to route texts to language-specific recognizers and models.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Language", "detect_language"]

Language = Literal["en", "ja", "ko", "zh"]


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
