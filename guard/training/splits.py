"""How a corpus row is dealt to train / dev / test, and the text key its de-duplication compares."""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["normalise", "split_of"]

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """NFKC, case-folded, non-word characters to one space: the key of the de-duplication."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def split_of(key: str, salt: str) -> str:
    """``train``, ``dev`` or ``test`` for a source-row key, from a salted sha256 (70/15/15)."""
    bucket = int(hashlib.sha256(f"{salt}|{key}".encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < 70 else "dev" if bucket < 85 else "test"
