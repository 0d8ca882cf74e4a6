"""Grammar-constrained decoding with llguidance: grammars are checked when a request arrives, and each constrained
sequence's next-token mask is applied in the scheduler's sampling step, beside unconstrained rows.

Why llguidance (MIT) over xgrammar (Apache-2.0), both of which vLLM uses: on this project's CPU stack it installs
as one 3 MB wheel with no dependencies (xgrammar brings triton, ~1 GB, and apache-tvm-ffi), it compiles Lark
grammars with embedded JSON Schemas (``%json``), which is what a tool call needs, and it fills a batch's masks in
parallel threads outside the GIL. Its own torch helper applies the mask with ``torch.compile`` (a C++ compiler and
seconds on first use): the bits are unpacked here with numpy instead, only for the constrained rows.

End of a grammar: llguidance's matcher is *stopped* as soon as nothing can follow (the closing ``}`` of a JSON
value); where more could follow (another parallel call, more text), the mask allows the stop tokens once the
grammar accepts, and the sequence ends when the model picks one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import torch

from guard.errors import GuardError

__all__ = ["JSON_OPTIONS", "GrammarCompiler", "InvalidGrammar", "json_schema_grammar", "with_json_options"]

JSON_OPTIONS: dict[str, Any] = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
"""JSON as the grammars produce it: no free whitespace (a sampled answer cannot run on in blanks), and the
spacing of Python's ``json.dumps``, which is how tool calls in the history are written."""

_REASON = re.compile(r"[A-Za-z][A-Za-z ]{0,60}")


def _reason(error: str) -> str:
    """llguidance's reason without what follows its first colon: that part can quote the caller's schema."""
    head = error.strip().split(":", 1)[0].strip()
    return head if _REASON.fullmatch(head) else "invalid"


class InvalidGrammar(GuardError, ValueError):
    """A grammar or JSON Schema that cannot be compiled (the API answers 400 naming the parameter)."""


def with_json_options(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` carrying :data:`JSON_OPTIONS` the way llguidance reads them inside a grammar (``x-guidance``)."""
    return {**schema, "x-guidance": JSON_OPTIONS}


def json_schema_grammar(schema: Mapping[str, Any]) -> str:
    """The grammar of JSON values valid under ``schema`` (raises :class:`InvalidGrammar` if it is not an object)."""
    from llguidance import LLMatcher

    if not isinstance(schema, Mapping):
        raise InvalidGrammar("a JSON Schema must be a JSON object")
    try:
        return str(LLMatcher.grammar_from_json_schema(json.dumps(dict(schema)), overrides=JSON_OPTIONS))  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise InvalidGrammar(f"invalid JSON Schema ({_reason(str(exc))})") from None


class GrammarCompiler:
    """One engine's grammar machinery: llguidance's view of the tokenizer (built on first use) and the masks."""

    def __init__(self, tokenizer: Any, *, stop_token_ids: Sequence[int], vocab_size: int) -> None:
        self._tokenizer = tokenizer
        self._stop_ids = list(stop_token_ids)
        self.vocab_size = vocab_size

    @cached_property
    def _ll_tokenizer(self) -> Any:
        import llguidance.hf

        return llguidance.hf.from_tokenizer(self._tokenizer, n_vocab=self.vocab_size, eos_token=self._stop_ids)

    def check(self, grammar: str) -> None:
        """Raise :class:`InvalidGrammar` (with llguidance's reason) unless ``grammar`` compiles for this tokenizer."""
        from llguidance import LLMatcher

        error = LLMatcher.validate_grammar(grammar, self._ll_tokenizer)
        if error:
            raise InvalidGrammar(f"the grammar or schema cannot be compiled ({_reason(error)})")

    def matcher(self, grammar: str) -> Any:
        """A fresh matcher for one sequence (raises :class:`InvalidGrammar` if the grammar does not compile)."""
        from llguidance import LLMatcher

        matcher = LLMatcher(self._ll_tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise InvalidGrammar(f"the grammar or schema cannot be compiled ({_reason(matcher.get_error())})")
        return matcher

    def allowed(self, matchers: Sequence[Any], width: int) -> torch.Tensor:
        """``[len(matchers), width]`` booleans: the tokens each matcher allows next (ids past the tokenizer's
        vocabulary never are)."""
        import llguidance.numpy

        words = (max(width, self.vocab_size) + 31) // 32
        bitmask = np.zeros((len(matchers), words), dtype=np.int32)
        for row, matcher in enumerate(matchers):
            llguidance.numpy.fill_next_token_bitmask(matcher, bitmask, row)
        bits = np.unpackbits(bitmask.view(np.uint8), axis=1, bitorder="little")[:, :width]
        return torch.from_numpy(bits.astype(np.bool_))

    def masked(self, matchers: Mapping[int, Any], logits: torch.Tensor) -> dict[int, torch.Tensor]:
        """For each row of ``matchers``, a copy of its ``logits`` row with the tokens its matcher forbids at
        ``-inf`` (the other rows, and ``logits`` itself, are not touched)."""
        rows = list(matchers)
        allowed = self.allowed([matchers[row] for row in rows], logits.shape[-1]).to(logits.device)
        masked = logits[rows].masked_fill(~allowed, float("-inf"))
        return dict(zip(rows, masked, strict=True))
