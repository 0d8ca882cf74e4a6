"""In-process generation: the engine protocol, the Gemma loader and the continuous batcher."""

from __future__ import annotations

from guard.engine.base import (
    ChatMessage,
    DeltaStream,
    Engine,
    EngineBusy,
    EngineError,
    EngineStats,
    EngineUnavailable,
    Generation,
    InvalidConversation,
    PromptTooLong,
    SamplingParams,
    StreamDelta,
)
from guard.engine.gemma import GemmaEngine
from guard.engine.judge import ShieldGemmaScorer

__all__ = [
    "ChatMessage",
    "DeltaStream",
    "Engine",
    "EngineBusy",
    "EngineError",
    "EngineStats",
    "EngineUnavailable",
    "GemmaEngine",
    "Generation",
    "InvalidConversation",
    "PromptTooLong",
    "SamplingParams",
    "ShieldGemmaScorer",
    "StreamDelta",
]
