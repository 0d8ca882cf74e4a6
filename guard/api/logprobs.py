"""The engine's token log-probabilities in OpenAI's two shapes: chat (``logprobs.content``) and legacy completions
(parallel ``tokens`` / ``token_logprobs`` / ``top_logprobs`` / ``text_offset`` lists)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from guard.api.schemas import ChoiceLogprobs, CompletionLogprobs, TokenLogprobOut, TopLogprob
from guard.engine import TokenLogprob

__all__ = ["TokenBytes", "chat_logprobs", "completion_logprobs"]

TokenBytes = Callable[[int], bytes]


def _text(raw: bytes) -> str:
    # A byte-fallback token is part of a character: OpenAI shows such tokens escaped and gives the exact bytes.
    return raw.decode("utf-8", errors="backslashreplace")


def chat_logprobs(entries: Sequence[TokenLogprob], token_bytes: TokenBytes) -> ChoiceLogprobs:
    content = []
    for entry in entries:
        raw = token_bytes(entry.token_id)
        top = [
            TopLogprob(token=_text(alt := token_bytes(token)), logprob=logprob, bytes=list(alt))
            for token, logprob in entry.top
        ]
        content.append(TokenLogprobOut(token=_text(raw), logprob=entry.logprob, bytes=list(raw), top_logprobs=top))
    return ChoiceLogprobs(content=content)


def completion_logprobs(
    entries: Sequence[TokenLogprob], token_bytes: TokenBytes, *, offset: int = 0
) -> CompletionLogprobs:
    """``offset``: where the first token's text starts in the choice's ``text`` (after an echoed prompt)."""
    tokens = [_text(token_bytes(entry.token_id)) for entry in entries]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    top = [{_text(token_bytes(token)): logprob for token, logprob in entry.top} for entry in entries]
    return CompletionLogprobs(
        tokens=tokens,
        token_logprobs=[entry.logprob for entry in entries],
        top_logprobs=top if any(entry.top for entry in entries) else None,
        text_offset=offsets,
    )
