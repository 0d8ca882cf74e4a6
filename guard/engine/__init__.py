"""Generation: the engine protocol, the in-process Gemma loader and continuous batcher, and the remote engine."""

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
    TokenLogprob,
)
from guard.engine.gemma import GemmaEngine
from guard.engine.judge import ShieldGemmaScorer
from guard.engine.remote import RemoteEngine

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
    "RemoteEngine",
    "SamplingParams",
    "ShieldGemmaScorer",
    "StreamDelta",
    "TokenLogprob",
]
