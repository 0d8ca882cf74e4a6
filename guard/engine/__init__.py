"""In-process generation: the engine protocol, the Gemma loader and the batching worker."""

from __future__ import annotations

from guard.engine.base import (
    ChatMessage,
    Engine,
    EngineError,
    EngineUnavailable,
    Generation,
    InvalidConversation,
    SamplingParams,
)
from guard.engine.gemma import GemmaEngine

__all__ = [
    "ChatMessage",
    "Engine",
    "EngineError",
    "EngineUnavailable",
    "GemmaEngine",
    "Generation",
    "InvalidConversation",
    "SamplingParams",
]
