"""The vocabulary head of a decode step: from the raw projection to each row's next token, doing only what it needs.

The projection onto all 256k vocabulary rows is always computed; what follows it used to be done for every row in
full (final softcap, a float32 copy, masking, argmax over the whole vocabulary) and cost as much as the
projection at 32 rows. Now:

- greedy rows with neither a grammar nor logprobs take the argmax of the *raw* projection over the servable ids:
  Gemma-2's final softcap ``tanh(x / cap) * cap`` is monotonic, so it cannot change which logit is largest (no
  softcap, no float copy, no softmax);
- only sampled, constrained or logprob rows get float32 softcapped scores (the model's own distribution, masked
  to the ids the tokenizer can decode), gathered for those rows alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from guard.engine.base import SamplingParams, TokenLogprob
from guard.engine.grammar import GrammarCompiler
from guard.engine.sampling import Sampler

__all__ = ["HeadRow", "VocabularyHead"]


class HeadRow(Protocol):
    """What the head needs of one running sequence."""

    params: SamplingParams
    sampler: Sampler
    matcher: Any
    """The llguidance matcher of a constrained sequence (``None``: unconstrained)."""


def _plain_greedy(row: HeadRow) -> bool:
    """Greedy, unconstrained and without logprobs: the raw projection's argmax is its token."""
    return row.sampler.greedy and row.matcher is None and row.params.logprobs is None


class VocabularyHead:
    def __init__(self, config: Any, *, servable_vocab: int, grammars: GrammarCompiler | None) -> None:
        self._config = config
        self._servable = servable_vocab
        self._grammars = grammars

    def scores(self, raw: torch.Tensor) -> torch.Tensor:
        """float32 logits as the model's forward gives them (final softcap in the model's dtype, as transformers
        applies it), with the ids the tokenizer cannot decode at ``-inf``."""
        if cap := getattr(self._config, "final_logit_softcapping", None):
            raw = torch.tanh(raw / cap) * cap
        logits = raw.float()
        if self._servable < logits.shape[-1]:
            logits[:, self._servable :] = float("-inf")
        return logits

    def choose(self, rows: Sequence[HeadRow], raw: torch.Tensor) -> tuple[list[int], list[TokenLogprob | None]]:
        """Next token (and logprobs where asked) per row of ``raw`` (``[rows, vocab]``, the projection)."""
        tokens = raw[:, : self._servable].argmax(-1).tolist()  # a view: only the servable columns are read
        special = [index for index, row in enumerate(rows) if not _plain_greedy(row)]
        logprobs: list[TokenLogprob | None] = [None] * len(rows)
        if not special:
            return tokens, logprobs
        scores = self.scores(raw[special])
        constrained = [(local, rows[index].matcher) for local, index in enumerate(special)]
        matchers = {local: matcher for local, matcher in constrained if matcher is not None}
        masked = self._grammars.masked(matchers, scores) if self._grammars is not None and matchers else {}
        for local, index in enumerate(special):
            row_scores = masked.get(local, scores[local])
            sampler = rows[index].sampler
            tokens[index] = int(row_scores.argmax()) if sampler.greedy else sampler.sample(row_scores)
        found = _logprobs([rows[index].params for index in special], scores, [tokens[index] for index in special])
        for local, index in enumerate(special):
            logprobs[index] = found[local]
        return tokens, logprobs


def _logprobs(params: Sequence[SamplingParams], scores: torch.Tensor, tokens: list[int]) -> list[TokenLogprob | None]:
    """The chosen token's log-probability (and the top alternatives) for the rows that asked for them: the
    model's own distribution (log-softmax of the softcapped logits), not the sampler's or the grammar's."""
    asked = [row for row, p in enumerate(params) if p.logprobs is not None]
    found: list[TokenLogprob | None] = [None] * len(params)
    if not asked:
        return found
    rows = scores[asked].log_softmax(-1)
    widest = max(params[row].logprobs or 0 for row in asked)
    top_values, top_ids = rows.topk(widest, dim=-1) if widest else (rows[:, :0], rows[:, :0].long())
    for index, row in enumerate(asked):
        count = params[row].logprobs or 0
        top = tuple(zip(top_ids[index, :count].tolist(), top_values[index, :count].tolist(), strict=True))
        found[row] = TokenLogprob(tokens[row], float(rows[index, tokens[row]]), top)
    return found
