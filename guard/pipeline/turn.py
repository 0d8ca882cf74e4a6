"""What one request carries through the pipeline: its caller, its turn (a stream's two records share it) and the
outcomes the API answers with."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from guard.checks import Finding, RequestScope
from guard.engine import DeltaStream, SamplingParams, TokenLogprob
from guard.engine.tool_format import FunctionSpec
from guard.pipeline.stage import Shadow
from guard.policy import LoadedPolicy

__all__ = ["Caller", "ChatOutcome", "ScanOutcome", "ScreenOutcome", "Turn", "elapsed_ms"]


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()``), as the audit row's latencies record them."""
    return round((time.perf_counter() - start) * 1000, 2)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked: the API key and its tenant (``None`` for requests refused before authentication resolved them)."""

    key_id: str | None = None
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class ChatOutcome:
    """A generation's answer as the API sends it (``decision_id`` is the record that answers it)."""

    decision_id: str
    decision: str
    text: str
    finish_reason: str
    policy: LoadedPolicy
    findings: list[Finding]
    tokens_in: int
    tokens_out: int
    logprobs: tuple[TokenLogprob, ...] | None = None
    """The answer's token log-probabilities when asked for and the answer is the model's text unchanged."""
    tool_calls: tuple[Any, ...] = ()
    """The checked tool calls (:class:`guard.pipeline.tools.ToolCallOut`) when the answer calls tools."""


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """A scan's answer: the decision, the text with the policy's rewrites and the findings."""

    decision_id: str
    decision: str
    redacted_text: str
    policy: LoadedPolicy
    findings: list[Finding]


@dataclass(frozen=True, slots=True)
class ScreenOutcome:
    """Several texts of one call checked together (a gateway's guardrail call): one decision and one record."""

    decision_id: str
    decision: str
    texts: list[str]
    """Each text with the policy's rewrites, in the order sent."""
    policy: LoadedPolicy
    findings: list[Finding]
    checks: tuple[str, ...]
    """The checks the policy's section ran (its configured, enabled ones), in the order they run."""


@dataclass(slots=True)
class Turn:
    """One generation request on its way through the pipeline (a stream's two records share it)."""

    decision_id: str
    policy: LoadedPolicy
    params: SamplingParams
    started: float
    record: dict[str, Any]
    """Audit fields known after the input stage."""
    scope: RequestScope = field(default_factory=RequestScope)
    prompt: str | None = None
    """The redacted last user message (for output checks that judge the answer with its question)."""
    latency: dict[str, float] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)
    decision: str = "allow"
    tokens_in: int = 0
    deltas: DeltaStream | None = None
    """The engine's stream; ``None`` when the input stage blocked the request."""
    kind: str = "request"
    close_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    """A stream's closing record id."""
    output_audit: str | None = None
    scores: list[dict[str, Any]] = field(default_factory=list)
    checked_chars: int = 0
    """Characters of a stream's output that passed the output checks before release."""
    sent_chars: int = 0
    """Characters of a stream's output handed to the caller."""
    shadow: Shadow | None = None
    """The policy's shadow candidate, evaluated beside it (never affecting the answer)."""
    offered: tuple[FunctionSpec, ...] = ()
    """The functions offered to the model (those of the request the policy permits); none: no tool calls."""

    @property
    def coverage(self) -> float:
        """The share of what was sent that was checked first (1.0 for whole answers: checked before sending)."""
        return self.checked_chars / self.sent_chars if self.sent_chars else 1.0

    def identity(self) -> dict[str, Any]:
        """Id and kind of the record that answers the turn (a stream's answer is its closing record)."""
        if self.kind == "request":
            return {"decision_id": self.decision_id, "kind": "request"}
        return {"decision_id": self.close_id, "kind": "stream_close", "parent_id": self.decision_id}

    def for_caller(self, text: str) -> str:
        """The answer as the caller gets it: with this request's placeholders restored if the policy says so."""
        pii = self.policy.policy.input.pii
        return self.scope.restore(text) if pii is not None and pii.restore else text

    def answer(
        self,
        text: str,
        finish: str,
        tokens_in: int,
        tokens_out: int,
        stored: str | None,
        logprobs: tuple[TokenLogprob, ...] | None = None,
        tool_calls: tuple[Any, ...] = (),
    ) -> ChatOutcome:
        """The outcome that answers the turn; ``stored`` is the output's stored form (``None``: ``text`` itself)."""
        self.output_audit = stored if stored is not None else text
        return ChatOutcome(
            decision_id=self.identity()["decision_id"],
            decision=self.decision,
            text=text,
            finish_reason=finish,
            policy=self.policy,
            findings=list(self.findings),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            logprobs=logprobs,
            tool_calls=tool_calls,
        )
