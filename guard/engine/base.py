"""The engine protocol: render a conversation, generate (or stream) text for a prompt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from guard.errors import GuardError

if TYPE_CHECKING:
    from guard.engine.tool_format import FunctionSpec

__all__ = [
    "ChatMessage",
    "DeltaStream",
    "Engine",
    "EngineBusy",
    "EngineError",
    "EngineStats",
    "EngineUnavailable",
    "FinishReason",
    "Generation",
    "InvalidConversation",
    "Prompt",
    "PromptTooLong",
    "SamplingParams",
    "StreamDelta",
    "TokenLogprob",
    "collect",
]

FinishReason = Literal["stop", "length"]
Prompt = str | Sequence[int]
"""Prompt text (tokenized without adding special tokens: templates carry their own ``<bos>``) or token ids."""


class EngineUnavailable(GuardError, RuntimeError):
    """The generator cannot be loaded; the message says what is missing and how to get it."""


class EngineError(GuardError, RuntimeError):
    """Generation failed (the request cannot be answered; the gateway fails closed)."""


class EngineBusy(GuardError, RuntimeError):
    """The waiting queue is full: the caller should retry later (HTTP 429 with Retry-After)."""


class PromptTooLong(GuardError, ValueError):
    """Prompt tokens plus ``max_tokens`` exceed the model's context (the numbers are kept for the caller's answer)."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context_length: int) -> None:
        super().__init__(
            f"prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds the model's context "
            f"({context_length} tokens)"
        )
        self.prompt_tokens, self.max_tokens, self.context_length = prompt_tokens, max_tokens, context_length


class InvalidConversation(GuardError, ValueError):
    """The messages do not form a conversation the model's chat template accepts."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    name: str | None = None
    """A ``tool`` result's tool name (shown to the model with the result)."""
    tool_call_id: str | None = None
    """A ``tool`` result's call id (findings in the result name it; the model does not see it)."""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Per-request decoding; ``temperature == 0`` means greedy. ``top_k == 0`` disables top-k."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    """Benchmarks only: generate exactly ``max_tokens`` tokens."""
    logprobs: int | None = None
    """Report each emitted token's log-probability and this many most likely alternatives (``None``: none)."""
    grammar: str | None = None
    """A grammar the answer must match (llguidance's Lark dialect or its JSON form, see
    :mod:`guard.engine.grammar`), applied as a token mask at each step; engines whose ``supports_grammars`` is
    false refuse it."""

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    finish_reason: FinishReason
    tokens_in: int
    tokens_out: int


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """An emitted token's log-probability under the model's distribution (log-softmax of the final, softcapped
    logits over the servable vocabulary; before temperature and top-k/top-p) and the ``top`` alternatives."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """New output of one sequence since the previous delta; the last one has ``finish_reason`` set.

    ``text`` may be empty while an incomplete UTF-8 character or a possible stop string is held back."""

    text: str
    token_ids: tuple[int, ...]
    tokens_in: int
    tokens_out: int
    finish_reason: FinishReason | None = None
    logprobs: tuple[TokenLogprob, ...] = ()
    """One per id of ``token_ids`` when the request asked for them."""


@dataclass(frozen=True, slots=True)
class EngineStats:
    running: int
    waiting: int
    max_running: int
    max_waiting: int
    healthy: bool
    last_error: str | None = None
    """Why the most recent engine step failed (e.g. ``OutOfMemoryError``); ``None`` once a step succeeds."""


class DeltaStream(Protocol):
    """One submitted sequence's deltas. Cancelling the consuming task, or :meth:`cancel`, frees its slot."""

    def __aiter__(self) -> DeltaStream: ...

    async def __anext__(self) -> StreamDelta: ...

    def cancel(self) -> None: ...


class Engine(Protocol):
    """An in-process generator. Model code never runs on the event loop.

    Cancelling the task that awaits :meth:`generate` or iterates a :meth:`stream` removes the sequence from the
    running batch at the next step boundary."""

    name: str
    model_id: str
    revision: str | None
    is_dev: bool
    description: str
    context_length: int
    has_chat_template: bool
    supports_logprobs: bool
    supports_grammars: bool

    def check_grammar(self, grammar: str) -> None:
        """Raise :class:`~guard.engine.grammar.InvalidGrammar` unless ``grammar`` compiles for this model."""
        ...

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for (a byte-fallback token is one byte of a longer character)."""
        ...

    def render_chat(self, messages: list[ChatMessage], tools: Sequence[FunctionSpec] = ()) -> str:
        """The prompt text for a conversation, offering ``tools`` in the format of :mod:`guard.engine.tool_format`
        (raises :class:`InvalidConversation`)."""
        ...

    def tokenize(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Token ids; chat prompts carry their own ``<bos>``, raw completions ask for it here."""
        ...

    def count_tokens(self, prompt: str) -> int: ...

    async def generate(self, prompt: Prompt, params: SamplingParams) -> Generation:
        """Raises :class:`EngineBusy`, :class:`PromptTooLong` or :class:`EngineError`."""
        ...

    def stream(self, prompt: Prompt, params: SamplingParams) -> DeltaStream:
        """Submit now (raising :class:`EngineBusy` or :class:`PromptTooLong` at once); iterate for the deltas,
        which raise :class:`EngineError` if generation fails."""
        ...

    def stats(self) -> EngineStats: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def collect(stream: DeltaStream) -> Generation:
    """A whole generation from a stream of deltas (how both engines answer an unstreamed request)."""
    parts: list[str] = []
    tokens_in = tokens_out = 0
    finish: FinishReason = "length"
    async for delta in stream:
        parts.append(delta.text)
        tokens_in, tokens_out = delta.tokens_in, delta.tokens_out
        finish = delta.finish_reason or finish
    return Generation(text="".join(parts), finish_reason=finish, tokens_in=tokens_in, tokens_out=tokens_out)
