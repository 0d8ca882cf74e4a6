"""The engine protocol: render a conversation, generate text for a prompt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "ChatMessage",
    "Engine",
    "EngineError",
    "EngineUnavailable",
    "Generation",
    "InvalidConversation",
    "SamplingParams",
]


class EngineUnavailable(RuntimeError):
    """The generator cannot be loaded; the message says what is missing and how to get it."""


class EngineError(RuntimeError):
    """Generation failed (the request cannot be answered; the gateway fails closed)."""


class InvalidConversation(ValueError):
    """The messages do not form a conversation the model's chat template accepts."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Per-request decoding; ``temperature == 0`` means greedy."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    finish_reason: Literal["stop", "length"]
    tokens_in: int
    tokens_out: int


class Engine(Protocol):
    """An in-process generator. ``generate`` never runs model code on the event loop."""

    name: str
    model_id: str
    revision: str | None
    is_dev: bool
    description: str
    context_length: int

    def render_chat(self, messages: list[ChatMessage]) -> str:
        """The prompt text for a conversation (raises :class:`InvalidConversation`)."""
        ...

    def count_tokens(self, prompt: str) -> int: ...

    async def generate(self, prompt: str, params: SamplingParams) -> Generation: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
