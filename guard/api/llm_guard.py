"""LLM Guard's API on guard's checks: ``/analyze/prompt``, ``/analyze/output``, ``/scan/prompt``, ``/scan/output``.

The request and response bodies are LLM Guard API's (``prompt``, ``output``, ``scanners_suppress`` in;
``is_valid``, ``scanners``, ``sanitized_prompt``/``sanitized_output`` out), so its clients only change the base
URL and key. Each call is one :meth:`~guard.pipeline.Pipeline.screen` of the text under the policy
``GUARD_LLM_GUARD_POLICY`` names (else the key's), audited like ``/v1/scan`` with the route as its name. Each of
the policy's checks reports under the name of the LLM Guard scanner it stands in for (:data:`SCANNER_NAMES`): its
risk score is its strongest finding's score (0.0 when it found nothing) and it is valid when it found nothing. The
``scan`` routes answer the same without the sanitized text.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.datastructures import State

from guard.api.auth import caller_of, policy_for, require_scope
from guard.api.errors import ERROR_RESPONSES
from guard.api.gateway_schemas import (
    AnalyzeOutputRequest,
    AnalyzeOutputResponse,
    AnalyzePromptRequest,
    AnalyzePromptResponse,
    ScanOutputRequest,
    ScanPromptRequest,
    ScanResponse,
)
from guard.checks import Stage
from guard.pipeline import InvalidParameter, Pipeline, ScreenOutcome

__all__ = ["SCANNER_NAMES", "LLMGuardController"]

SCANNER_NAMES: dict[Stage, dict[str, str]] = {
    "input": {"pii": "Anonymize", "secrets": "Secrets", "injection": "PromptInjection", "prohibited_use": "BanTopics"},
    "output": {"pii": "Sensitive", "secrets": "Secrets", "prohibited_use": "BanTopics", "toxicity": "Toxicity"},
}
"""The LLM Guard scanner each of guard's checks reports as, per stage."""


def _suppressed(stage: Stage, names: list[str]) -> set[str]:
    """The checks ``names`` (LLM Guard's scanner names or guard's check names) point at; an unknown name is a 400,
    since a typo would otherwise leave a scanner counted that the caller meant to set aside."""
    by_name = {scanner: check for check, scanner in SCANNER_NAMES[stage].items()}
    by_name.update({check: check for check in SCANNER_NAMES[stage]})
    unknown = [name for name in names if name not in by_name]
    if unknown:
        known = ", ".join(sorted(set(SCANNER_NAMES[stage].values())))
        raise InvalidParameter(f"unknown scanner name; this stage's scanners are {known}", param="scanners_suppress")
    return {by_name[name] for name in names}


def _verdict(outcome: ScreenOutcome, stage: Stage, suppressed: set[str]) -> ScanResponse:
    scores: dict[str, float] = {}
    for check in outcome.checks:
        if check in suppressed:
            continue
        found = [f.score for f in outcome.findings if f.check == check]
        scanner = SCANNER_NAMES[stage][check]
        scores[scanner] = max(scores.get(scanner, 0.0), round(min(max(found, default=0.0), 1.0), 2))
    valid = not any(f.check not in suppressed for f in outcome.findings)
    return ScanResponse(is_valid=valid, scanners=scores)


class LLMGuardController(Controller):
    tags = ["gateways"]
    guards = [require_scope("scan")]

    async def _screen(
        self, request: Request[Any, Any, Any], state: State, text: str, stage: Stage, suppress: list[str], **kw: Any
    ) -> tuple[ScreenOutcome, ScanResponse]:
        suppressed = _suppressed(stage, suppress)
        pipeline: Pipeline = state.pipeline
        policy_name = policy_for(request, state.llm_guard_policy)
        outcome = await pipeline.screen(
            [text], stage, policy_name=policy_name, caller=caller_of(request), route=request.url.path, **kw
        )
        return outcome, _verdict(outcome, stage, suppressed)

    @post("/analyze/prompt", operation_id="llmGuardAnalyzePrompt", status_code=200, responses=ERROR_RESPONSES)
    async def analyze_prompt(
        self, request: Request[Any, Any, Any], state: State, data: AnalyzePromptRequest
    ) -> Response[AnalyzePromptResponse]:
        """The prompt's sanitized form and each scanner's verdict (the policy's input checks)."""
        outcome, verdict = await self._screen(request, state, data.prompt, "input", data.scanners_suppress)
        body = AnalyzePromptResponse(
            is_valid=verdict.is_valid, scanners=verdict.scanners, sanitized_prompt=outcome.texts[0]
        )
        return Response(body, headers={"X-Guard-Decision-Id": outcome.decision_id})

    @post("/scan/prompt", operation_id="llmGuardScanPrompt", status_code=200, responses=ERROR_RESPONSES)
    async def scan_prompt(
        self, request: Request[Any, Any, Any], state: State, data: ScanPromptRequest
    ) -> Response[ScanResponse]:
        """Each scanner's verdict on the prompt (the policy's input checks), without the sanitized text."""
        outcome, verdict = await self._screen(request, state, data.prompt, "input", data.scanners_suppress)
        return Response(verdict, headers={"X-Guard-Decision-Id": outcome.decision_id})

    @post("/analyze/output", operation_id="llmGuardAnalyzeOutput", status_code=200, responses=ERROR_RESPONSES)
    async def analyze_output(
        self, request: Request[Any, Any, Any], state: State, data: AnalyzeOutputRequest
    ) -> Response[AnalyzeOutputResponse]:
        """The output's sanitized form and each scanner's verdict (the policy's output checks, reading the prompt
        it answers)."""
        outcome, verdict = await self._screen(
            request, state, data.output, "output", data.scanners_suppress, context=data.prompt
        )
        body = AnalyzeOutputResponse(
            is_valid=verdict.is_valid, scanners=verdict.scanners, sanitized_output=outcome.texts[0]
        )
        return Response(body, headers={"X-Guard-Decision-Id": outcome.decision_id})

    @post("/scan/output", operation_id="llmGuardScanOutput", status_code=200, responses=ERROR_RESPONSES)
    async def scan_output(
        self, request: Request[Any, Any, Any], state: State, data: ScanOutputRequest
    ) -> Response[ScanResponse]:
        """Each scanner's verdict on the output, without the sanitized text."""
        outcome, verdict = await self._screen(
            request, state, data.output, "output", data.scanners_suppress, context=data.prompt
        )
        return Response(verdict, headers={"X-Guard-Decision-Id": outcome.decision_id})
