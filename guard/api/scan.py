"""``POST /v1/scan``: run a policy's checks on one text, without generating; audited like any decision."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.datastructures import State

from guard.api.answers import stamp
from guard.api.auth import caller_of, policy_for, require_scope
from guard.api.errors import ERROR_RESPONSES
from guard.api.schemas import ScanRequest, ScanResponse
from guard.pipeline import Pipeline

__all__ = ["ScanController"]


class ScanController(Controller):
    tags = ["checks"]

    @post("/scan", operation_id="scanText", status_code=200, guards=[require_scope("scan")], responses=ERROR_RESPONSES)
    async def scan(self, request: Request[Any, Any, Any], state: State, data: ScanRequest) -> Response[ScanResponse]:
        pipeline: Pipeline = state.pipeline
        policy_name = policy_for(request, data.policy)
        outcome = await pipeline.scan(
            data.text, data.stage, policy_name=policy_name, caller=caller_of(request), context=data.context
        )
        body = ScanResponse(
            decision_id=outcome.decision_id,
            decision=outcome.decision,
            redacted_text=outcome.redacted_text,
            findings=outcome.findings,
            policy=stamp(outcome),
        )
        return Response(body, headers={"X-Guard-Decision-Id": outcome.decision_id})
