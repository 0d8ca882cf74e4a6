"""Per-request next-token choice: greedy, or temperature / top-k / top-p sampling with the request's own seed.

Each request samples from its own ``torch.Generator``, so a seeded request gives the same text whatever else is
in the batch. The filters follow transformers' logits warpers (temperature, then top-k, then top-p keeping at
least one token)."""

from __future__ import annotations

import secrets

import torch

from guard.engine.base import SamplingParams

__all__ = ["Sampler"]


class Sampler:
    def __init__(self, params: SamplingParams, device: torch.device) -> None:
        self.params = params
        self._generator: torch.Generator | None = None
        if not params.greedy:
            seed = params.seed if params.seed is not None else secrets.randbits(63)
            self._generator = torch.Generator(device=device).manual_seed(seed)

    @property
    def greedy(self) -> bool:
        return self._generator is None

    def sample(self, logits: torch.Tensor) -> int:
        """One token from one row of float32 logits (already masked to the servable vocabulary).

        With top-k the softmax (and top-p's sort) runs over the ``k`` best scores only, never the whole
        vocabulary: the tokens outside them have probability 0 either way."""
        if self._generator is None:
            return int(logits.argmax())
        params = self.params
        scores = logits / params.temperature
        ids: torch.Tensor | None = None
        if 0 < params.top_k < scores.shape[-1]:
            scores, ids = torch.topk(scores, params.top_k)  # sorted, best first
        if params.top_p < 1.0:
            ordered, order = (scores, None) if ids is not None else torch.sort(scores, descending=True)
            probabilities = ordered.softmax(-1)
            drop = probabilities.cumsum(-1) - probabilities >= params.top_p  # keep the smallest prefix reaching top_p
            if order is not None:
                drop = torch.zeros_like(drop).scatter(0, order, drop)
            scores = scores.masked_fill(drop, float("-inf"))
        choice = int(torch.multinomial(scores.softmax(-1), 1, generator=self._generator))
        return int(ids[choice]) if ids is not None else choice
