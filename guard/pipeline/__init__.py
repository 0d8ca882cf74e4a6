"""The orchestration: policy → input checks → engine → output checks → audit commit → answer.

The only package that imports checks, engine and audit together; one question per module:

- :mod:`~guard.pipeline.service`: :class:`Pipeline`, the request lifecycle facade the API and the tools hold;
- :mod:`~guard.pipeline.stage`: :class:`CheckStage`, one policy section's checks over texts from many requests,
  the shadow candidate beside them;
- :mod:`~guard.pipeline.generation`: a request's input stage, engine submission and whole answer;
- :mod:`~guard.pipeline.streaming`: a streamed answer as one iterator of typed events (release, close, abandon);
- :mod:`~guard.pipeline.records`: every audit record, and the strict and best-effort ways of writing them;
- :mod:`~guard.pipeline.tools`: guarded tool calls and structured answers (offer, grammar, argument checks);
- :mod:`~guard.pipeline.turn`: what one request carries (caller, turn, outcomes);
- :mod:`~guard.pipeline.health`: readiness probes; :mod:`~guard.pipeline.errors`: how a request is refused.
"""

from __future__ import annotations

from guard.engine import InvalidConversation
from guard.pipeline.errors import (
    ContextLengthExceeded,
    EngineOverloaded,
    InputTooLarge,
    InvalidParameter,
    PolicyNotFound,
    ServiceUnavailable,
)
from guard.pipeline.health import Health
from guard.pipeline.records import NOT_STORED, TEXT_NOT_KEPT
from guard.pipeline.service import Pipeline
from guard.pipeline.stage import INPUT_CHECKS, OUTPUT_CHECKS, Checked, CheckStage, Shadow
from guard.pipeline.streaming import Closed, Failed, Finished, Opened, StreamEvent, Text
from guard.pipeline.tools import Structure, ToolCallOut, ToolRequest
from guard.pipeline.turn import Caller, ChatOutcome, ScanOutcome, ScreenOutcome, Turn

__all__ = [
    "INPUT_CHECKS",
    "NOT_STORED",
    "OUTPUT_CHECKS",
    "TEXT_NOT_KEPT",
    "Caller",
    "ChatOutcome",
    "CheckStage",
    "Checked",
    "Closed",
    "ContextLengthExceeded",
    "EngineOverloaded",
    "Failed",
    "Finished",
    "Health",
    "InputTooLarge",
    "InvalidConversation",
    "InvalidParameter",
    "Opened",
    "Pipeline",
    "PolicyNotFound",
    "ScanOutcome",
    "ScreenOutcome",
    "ServiceUnavailable",
    "Shadow",
    "StreamEvent",
    "Structure",
    "Text",
    "ToolCallOut",
    "ToolRequest",
    "Turn",
]
