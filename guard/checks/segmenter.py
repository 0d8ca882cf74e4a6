"""Cutting a streamed output into segments that are checked before they are released.

A segment ends at a sentence end (so checks judge whole sentences and PII is not split across segments), or, for
a long run without one, after ``max_tokens`` tokens at the last whitespace (a word is never split). Nothing is
released that has not been through the output checks; the cost is at most one sentence of added latency.
"""

from __future__ import annotations

import re

__all__ = ["OutputSegmenter", "finished_length"]

# A sentence end: Latin punctuation followed by whitespace, CJK full stops (no space follows them), or a newline.
_CLOSERS = "\"')\\]\u201d\u2019\u300d\u300f"  # quotes and brackets that may follow the stop
_SENTENCE_END = re.compile(f"[.!?\u2026][{_CLOSERS}]*\\s+|[\u3002\uff01\uff1f][{_CLOSERS}]*\\s*|\n+")
_WHITESPACE = re.compile(r"\s+")


def finished_length(text: str) -> int:
    """How much of ``text`` ends at its last sentence end (0 when no sentence has ended yet): the part a streamed
    text may release, since what follows may still change how it is judged or redacted."""
    ends = [match.end() for match in _SENTENCE_END.finditer(text)]
    return ends[-1] if ends else 0


class OutputSegmenter:
    def __init__(self, *, max_tokens: int = 48, min_chars: int = 24) -> None:
        self.max_tokens = max_tokens
        self.min_chars = min_chars
        self._pending = ""
        self._tokens = 0

    def feed(self, text: str, tokens: int) -> list[str]:
        """Add ``text`` (``tokens`` new tokens); return the segments now complete, in order."""
        self._pending += text
        self._tokens += tokens
        segments: list[str] = []
        cut = self._last_sentence_end()
        if cut is None and self._tokens >= self.max_tokens:
            cut = self._last_whitespace()
        if cut is not None:
            segments.append(self._pending[:cut])
            self._pending = self._pending[cut:]
            self._tokens = 0
        return segments

    def flush(self) -> str:
        """Whatever is left when the generation ends."""
        rest, self._pending, self._tokens = self._pending, "", 0
        return rest

    def _last_sentence_end(self) -> int | None:
        ends = [m.end() for m in _SENTENCE_END.finditer(self._pending) if m.end() >= self.min_chars]
        return ends[-1] if ends else None

    def _last_whitespace(self) -> int | None:
        ends = [m.end() for m in _WHITESPACE.finditer(self._pending) if m.start() > 0]
        return ends[-1] if ends else None
