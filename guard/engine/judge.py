"""The judge model: P(Yes) for ShieldGemma-style prompts from one batched forward pass of a Gemma causal LM.

ShieldGemma's documented scoring: tokenize the prompt (with ``<bos>``), run the model, take the logits of the
"Yes" and "No" tokens at the last position and softmax them; P(Yes) is the probability that the text violates the
principle. Batches are padded on the left with an attention mask, and position ids are counted from each prompt's
first real token, so a prompt scores the same alone or in a batch (tested against an unpadded forward). Only the
last position's logits are computed (``logits_to_keep=1``): the full ``[batch, length, 256k]`` tensor would dwarf
the model on a real vocabulary.

Loading goes through :mod:`guard.engine.loading` like the generator (device, dtype, softcap-safe attention).
"""

from __future__ import annotations

import logging
from typing import Any

from guard.engine.base import EngineUnavailable
from guard.engine.loading import LoadPlan, load_model, plan_load, read_model_type
from guard.settings import LocalEngineSettings

__all__ = ["ANSWER_WORDS", "ShieldGemmaScorer", "answer_token_ids"]

logger = logging.getLogger(__name__)

ANSWER_WORDS = ("Yes", "No")


def answer_token_ids(tokenizer: Any) -> tuple[int, int, bool]:
    """The ids of the "Yes" and "No" tokens and whether both are whole tokens of the vocabulary.

    ShieldGemma's vocabulary has both (the card reads ``vocab['Yes']``). A vocabulary without them (the locally
    trained dev tokenizer) falls back to each word's first token, which keeps the mechanics testable; the scores
    of such a model mean nothing, and the scorer's description says so."""
    vocab = tokenizer.get_vocab()
    if all(word in vocab for word in ANSWER_WORDS):
        return vocab["Yes"], vocab["No"], True
    first = [tokenizer(word, add_special_tokens=False).input_ids[:1] for word in ANSWER_WORDS]
    if not all(first) or first[0] == first[1]:
        raise EngineUnavailable("the judge's tokenizer cannot tell 'Yes' from 'No' by their first tokens")
    return first[0][0], first[1][0], False


class ShieldGemmaScorer:
    """``p_yes(prompts)``: the judge layer's scorer (see :class:`guard.checks.judge.JudgeScorer`)."""

    def __init__(self, model: Any, tokenizer: Any, *, model_id: str, plan: LoadPlan | None = None) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._tokenizer.padding_side = "left"  # every prompt ends at the last position, where the answer starts
        self.model_id = model_id
        self._yes, self._no, exact = answer_token_ids(tokenizer)
        details = plan.describe() if plan is not None else f"{model.device}, {str(model.dtype).removeprefix('torch.')}"
        approximation = "" if exact else ", Yes/No by first token: dev mechanics only"
        self.description = f"{model_id} ({details}{approximation})"

    @classmethod
    def load(cls, ref: str, settings: LocalEngineSettings) -> ShieldGemmaScorer:
        """Load ``ref`` (e.g. google/shieldgemma-2b from the local cache, or a directory) or raise
        :class:`EngineUnavailable` with what to do."""
        plan = plan_load(settings, read_model_type(ref))
        model, tokenizer = load_model(ref, plan)
        return cls(model, tokenizer, model_id=ref, plan=plan)

    def p_yes(self, prompts: list[str]) -> list[float]:
        """P(Yes) per prompt, all prompts in ONE forward pass."""
        if not prompts:
            return []
        import torch

        batch = self._tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=True)
        input_ids = batch.input_ids.to(self._model.device)
        attention_mask = batch.attention_mask.to(self._model.device)
        # Left padding shifts each prompt: number positions from its own first token, as generate() does, so each
        # prompt sees exactly the positions it has alone (RoPE is shift-invariant anyway; the mask hides the pads).
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self._model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
                logits_to_keep=1,
            ).logits[:, -1, :]
        pair = logits[:, [self._yes, self._no]].float()
        return [float(p) for p in torch.softmax(pair, dim=-1)[:, 0].tolist()]
