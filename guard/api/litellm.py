"""``POST /beta/litellm_basic_guardrail_api``: guard as a LiteLLM generic guardrail (LiteLLM's BETA contract,
tested against 1.108.7).

One call is one :meth:`~guard.pipeline.Pipeline.screen` of its texts, as ``/v1/scan`` does for one text: the
policy's input section for a request's texts (each judged as its message's role says, one placeholder numbering
across them), the output section for an answer's. It answers ``BLOCKED`` with the policy's refusal and what was
found when a check blocks, ``GUARDRAIL_INTERVENED`` with the rewritten texts when a check rewrote one (PII and
secrets redacted, spelled control tokens neutralised), else ``NONE``; every call is one audit row carrying LiteLLM's
``litellm_call_id`` as ``client_ref``. For an answer it also asks a stream to hold back each text's unfinished
sentence (``stream_holdback_chars``), so that under ``streaming_transform_mode: incremental_diff`` nothing is sent
before the sentence it belongs to was checked whole. Images cannot be checked: a call carrying one is refused (400),
which LiteLLM treats as a failed guardrail (the request fails). Tool definitions and tool calls are not checked.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State

from guard.api.answers import stamp
from guard.api.auth import caller_of, policy_for, require_scope
from guard.api.errors import ERROR_RESPONSES
from guard.api.gateway_schemas import GuardrailDecision, GuardrailRequest, GuardrailResponse
from guard.api.litellm_callers import CallerMap
from guard.checks.segmenter import finished_length
from guard.pipeline import Caller, InvalidParameter, Pipeline, ScreenOutcome

__all__ = ["litellm_guardrail"]

ROUTE = "/beta/litellm_basic_guardrail_api"
_CHECKED_AS = {"tool": "user", "function": "user", "developer": "system"}
"""A tool's result is outside text, like a user's; a developer message is a system one (as guard's chat does)."""


def roles_of(texts: list[str], messages: list[dict[str, Any]] | None) -> list[str] | None:
    """Each text's role, read from the messages LiteLLM took them from as LiteLLM does (a string content is one
    text, each part of a list content with a ``text`` is one); ``None`` when they do not line up, and every text is
    then judged as the caller's own."""
    if not messages:
        return None
    roles: list[str] = []
    for message in messages:
        role, content = str(message.get("role") or "user"), message.get("content")
        if isinstance(content, str):
            roles.append(role)
        elif isinstance(content, list):
            roles += [role for part in content if isinstance(part, dict) and part.get("text") is not None]
    return [_CHECKED_AS.get(role, role) for role in roles] if len(roles) == len(texts) else None


def _reason(outcome: ScreenOutcome, what: str) -> str:
    """The policy's refusal, and what guard found (check and type, never text) with the decision to look up."""
    found = sorted({f"{f.check}:{f.type}" for f in outcome.findings if f.action == "block"})
    policy = outcome.policy
    return (
        f"{policy.policy.refusal_message} [guard blocked this {what}: {', '.join(found)}; "
        f"policy {policy.name} {policy.version}; decision {outcome.decision_id}]"
    )


def _answer(outcome: ScreenOutcome, texts: list[str], output: bool) -> GuardrailResponse:
    info = GuardrailDecision(
        decision_id=outcome.decision_id,
        decision=outcome.decision,
        policy=stamp(outcome),
        findings=msgspec.to_builtins(outcome.findings),
    )
    holdback = [len(text) - finished_length(text) for text in outcome.texts] if output else None
    if any(f.action == "block" for f in outcome.findings):
        reason = _reason(outcome, "response" if output else "request")
        return GuardrailResponse(action="BLOCKED", blocked_reason=reason, guard=info)
    if outcome.texts != texts:
        return GuardrailResponse(
            action="GUARDRAIL_INTERVENED", texts=outcome.texts, stream_holdback_chars=holdback, guard=info
        )
    return GuardrailResponse(action="NONE", stream_holdback_chars=holdback, guard=info)


@post(
    ROUTE,
    operation_id="litellmGuardrail",
    tags=["gateways"],
    status_code=200,
    guards=[require_scope("scan")],
    responses=ERROR_RESPONSES,
)
async def litellm_guardrail(
    request: Request[Any, Any, Any], state: State, data: GuardrailRequest
) -> Response[GuardrailResponse]:
    """LiteLLM's generic guardrail call: the texts checked by the policy its caller maps to, allowed, rewritten or
    blocked; audited with LiteLLM's call id."""
    if data.images:
        raise InvalidParameter("guard checks text only: a request with images cannot be checked", param="images")
    callers: CallerMap = state.litellm_callers
    mapped = callers.resolve(data.request_data, data.additional_provider_specific_params or {})
    policy_name = policy_for(request, mapped.policy)
    caller = caller_of(request)
    if caller.tenant is None and mapped.tenant is not None:
        caller = Caller(key_id=caller.key_id, tenant=mapped.tenant)
    texts = data.texts or []
    output = data.input_type == "response"
    pipeline: Pipeline = state.pipeline
    outcome = await pipeline.screen(
        texts,
        "output" if output else "input",
        policy_name=policy_name,
        caller=caller,
        route=ROUTE,
        roles=None if output else roles_of(texts, data.structured_messages),
        client_ref=data.litellm_call_id,
    )
    return Response(_answer(outcome, texts, output), headers={"X-Guard-Decision-Id": outcome.decision_id})
