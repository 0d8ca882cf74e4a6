"""Bodies of the routes that speak other gateways' protocols: LiteLLM's generic guardrail API (BETA in LiteLLM,
tested against 1.108.7) and LLM Guard's API. Unknown request fields are accepted, as those gateways' own servers
accept them: a newer LiteLLM adds fields, and ignoring one changes no decision (what guard checks is listed)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from guard.api.schemas import PolicyStamp

__all__ = [
    "AnalyzeOutputRequest",
    "AnalyzeOutputResponse",
    "AnalyzePromptRequest",
    "AnalyzePromptResponse",
    "GuardrailDecision",
    "GuardrailRequest",
    "GuardrailResponse",
    "ScanOutputRequest",
    "ScanPromptRequest",
    "ScanResponse",
]


class GuardrailRequest(msgspec.Struct, kw_only=True):
    """What LiteLLM's ``generic_guardrail_api`` sends to ``POST /beta/litellm_basic_guardrail_api``."""

    input_type: Literal["request", "response"]
    """``request``: the texts LiteLLM is about to send upstream (pre-call, during-call); ``response``: the answer's
    texts (post-call; a stream's text so far)."""
    texts: list[str] | None = None
    structured_messages: list[dict[str, Any]] | None = None
    """The request's messages the texts come from (their roles); not sent for responses."""
    images: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    request_data: dict[str, Any] = msgspec.field(default_factory=dict)
    """The caller's LiteLLM virtual-key facts, ``user_api_key_*``."""
    request_headers: dict[str, str] | None = None
    litellm_call_id: Annotated[str, Meta(max_length=128)] | None = None
    """Kept on the audit row as ``client_ref``."""
    litellm_trace_id: str | None = None
    litellm_version: str | None = None
    additional_provider_specific_params: dict[str, Any] | None = None
    model: str | None = None


class GuardrailDecision(msgspec.Struct, kw_only=True):
    """guard's own view of the call, beside LiteLLM's fields (LiteLLM ignores it; a log reader has the id)."""

    decision_id: str
    decision: str
    policy: PolicyStamp
    findings: list[dict[str, Any]]


class GuardrailResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """LiteLLM's contract: ``BLOCKED`` (with ``blocked_reason``), ``NONE``, or ``GUARDRAIL_INTERVENED`` with the
    rewritten ``texts``; ``stream_holdback_chars`` asks a stream to hold back each text's unfinished sentence."""

    action: Literal["BLOCKED", "NONE", "GUARDRAIL_INTERVENED"]
    blocked_reason: str | None = None
    texts: list[str] | None = None
    stream_holdback_chars: list[int] | None = None
    guard: GuardrailDecision | None = None


class ScanPromptRequest(msgspec.Struct, kw_only=True):
    prompt: str
    scanners_suppress: list[str] = msgspec.field(default_factory=list)
    """Scanners (LLM Guard's names, or guard's check names) left out of ``scanners`` and ``is_valid``. The policy
    still runs and audits them (and a redacting one still rewrites the text): a caller cannot switch a check off."""


class AnalyzePromptRequest(ScanPromptRequest, kw_only=True):
    pass


class ScanOutputRequest(msgspec.Struct, kw_only=True):
    prompt: str
    output: str
    scanners_suppress: list[str] = msgspec.field(default_factory=list)


class AnalyzeOutputRequest(ScanOutputRequest, kw_only=True):
    pass


class ScanResponse(msgspec.Struct, kw_only=True):
    is_valid: bool
    """Whether no reported scanner found anything."""
    scanners: dict[str, float]
    """Each scanner's risk score in [0, 1]: its strongest finding's score, 0.0 when it found nothing."""


class AnalyzePromptResponse(ScanResponse, kw_only=True):
    sanitized_prompt: str


class AnalyzeOutputResponse(ScanResponse, kw_only=True):
    sanitized_output: str
