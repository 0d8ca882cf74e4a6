"""The Gemma-style tokenizer every dev generator uses, trained locally, and the Gemma chat templates.

A BPE tokenizer with byte fallback, ``▁`` for spaces and Gemma's special tokens at Gemma's ids (``<pad>`` 0,
``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3), wrapped as a ``GemmaTokenizer`` so that it saves and reloads through
``AutoTokenizer`` exactly as the real ones do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import GemmaTokenizer

__all__ = [
    "END_OF_TURN",
    "GEMMA2_CHAT_TEMPLATE",
    "SYSTEMGEMMA2_CHAT_TEMPLATE",
    "train_tokenizer",
]

GEMMA2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
"""The chat template of ``google/gemma-2-2b-it``, verbatim."""

SYSTEMGEMMA2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ '<start_of_turn>system\n' + messages[0]['content'] | trim + '<end_of_turn>\n' }}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
"""Gemma-2's template with a leading system message rendered as its own ``<start_of_turn>system`` turn."""

END_OF_TURN = "<end_of_turn>"
"""Closes every chat turn; the chat generators stop at it as at ``<eos>``."""

_SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", END_OF_TURN)
_UNKNOWN = "<unk>"
_LEARNED_VOCAB = 1200


def train_tokenizer(texts: Sequence[str], chat_template: str | None) -> GemmaTokenizer:
    """A Gemma-style BPE tokenizer: byte fallback, '▁' for spaces, Gemma's special tokens and ids."""
    trainer_backend = Tokenizer(models.BPE(unk_token=_UNKNOWN, byte_fallback=True))
    trainer_backend.normalizer = normalizers.Replace(" ", "▁")
    # Split before each '▁' only while learning merges, so that no merge spans two words.
    trainer_backend.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=_LEARNED_VOCAB, min_frequency=2, show_progress=False)
    trainer_backend.train_from_iterator(texts, trainer=trainer)
    learned = json.loads(trainer_backend.to_str())["model"]
    vocab = {token: index for index, token in enumerate(_SPECIAL_TOKENS)}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for token in sorted(learned["vocab"], key=learned["vocab"].__getitem__):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in learned["merges"]]
    # GemmaTokenizer rebuilds the same normalizer/decoder on reload, so the saved tokenizer round-trips exactly.
    return GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        add_bos_token=True,
        add_eos_token=False,
        padding_side="left",
        extra_special_tokens=[token for token in _SPECIAL_TOKENS if token.endswith("_of_turn>")],
        chat_template=chat_template,
    )
