"""Which token log-probabilities an answer may carry: only those of text the caller received as the model wrote it.

A token's logprob entry names the token, so handing out entries past the checked text (or for text the output
checks rewrote) would leak what the policy held back. Entries are released against the bytes of the raw text that
was sent unchanged; once any part of the answer was rewritten or cut, no more are released."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from guard.engine import TokenLogprob

__all__ = ["LogprobRelease"]


class LogprobRelease:
    def __init__(self, token_bytes: Callable[[int], bytes]) -> None:
        self._token_bytes = token_bytes
        self._pending: deque[TokenLogprob] = deque()
        self._budget = 0
        self._spent = 0
        self.withheld = False
        """Part of the answer was rewritten or cut: no entries are released from then on."""

    def add(self, entries: Iterable[TokenLogprob]) -> None:
        """Entries of newly generated tokens, in order."""
        self._pending.extend(entries)

    def release(self, raw: str, sent: str) -> tuple[TokenLogprob, ...]:
        """The entries covered by ``raw`` (the model's text, next in order) now that ``sent`` went to the caller."""
        if sent != raw:
            self.withheld = True
        if self.withheld:
            self._pending.clear()
            return ()
        self._budget += len(raw.encode())
        released = []
        while self._pending and self._spent + len(size := self._token_bytes(self._pending[0].token_id)) <= self._budget:
            self._spent += len(size)
            released.append(self._pending.popleft())
        return tuple(released)
