"""Incremental detokenization with stop strings: text deltas that never split a character or leak a stop string."""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["Detokenizer"]

Decode = Callable[[Sequence[int]], str]


class Detokenizer:
    """Feeds on token ids, yields text deltas.

    Decoding only a short window of recent tokens keeps each step O(1) while letting the tokenizer merge byte
    fallback pieces and leading-space markers correctly; a delta ending in U+FFFD (an incomplete UTF-8 sequence)
    waits for the next token. Up to ``len(longest stop string) - 1`` characters are held back so a stop string that
    arrives across tokens is cut before any part of it is released."""

    def __init__(self, decode: Decode, stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stop = tuple(s for s in stop if s)
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self._ids: list[int] = []
        self._prefix = 0  # window start
        self._read = 0  # tokens already turned into text
        self.text = ""  # all text decoded so far (stop strings cut off)
        self._released = 0
        self.stopped = False

    def add(self, token: int) -> None:
        self._ids.append(token)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return
        self.text += after[len(before) :]
        self._prefix, self._read = self._read, len(self._ids)
        cuts = [i for i in (self.text.find(s) for s in self._stop) if i >= 0]
        if cuts:
            self.text, self.stopped = self.text[: min(cuts)], True

    def release(self, *, final: bool) -> str:
        """Text that is safe to send now (everything, when ``final``)."""
        end = len(self.text) if final or self.stopped else max(self._released, len(self.text) - self._hold)
        delta, self._released = self.text[self._released : end], end
        return delta
