"""``POST /v1/completions``: raw continuation for base models (Gemma-1 gemma-mling and the like), no template."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.datastructures import State

from guard.api.answers import created_now, guard_info, usage
from guard.api.auth import caller_of, policy_for, require_scope
from guard.api.chat import check_model, sampling
from guard.api.errors import ERROR_RESPONSES
from guard.api.schemas import CompletionChoice, CompletionRequest, TextCompletion, TextCompletionChunk
from guard.api.streaming import ChunkShape, sse_response
from guard.pipeline import Pipeline

__all__ = ["COMPLETION_CHUNKS", "CompletionsController"]


COMPLETION_CHUNKS = ChunkShape(
    id_prefix="cmpl-",
    chunk=TextCompletionChunk,
    object="text_completion",
    content=lambda text: CompletionChoice(index=0, text=text, finish_reason=None),
    finish=lambda reason: CompletionChoice(index=0, text="", finish_reason=reason),
)
"""Completion chunks: ``text`` pieces, no opening chunk."""


class CompletionsController(Controller):
    tags = ["generation"]

    @post(
        "/completions",
        operation_id="createCompletion",
        status_code=200,
        guards=[require_scope("generate")],
        responses=ERROR_RESPONSES,
    )
    async def create_completion(self, request: Request[Any, Any, Any], state: State, data: CompletionRequest) -> Any:
        """Continue ``prompt`` (the model's ``<bos>`` is added); checked and audited like a chat."""
        pipeline: Pipeline = state.pipeline
        model_id = check_model(pipeline, data.model)
        params = sampling(data, max_tokens=data.max_tokens)
        prompt = data.prompt if isinstance(data.prompt, str) else data.prompt[0]
        policy_name = policy_for(request, request.headers.get("x-guard-policy"))
        caller = caller_of(request)
        if data.stream:
            events = pipeline.stream(params, policy_name=policy_name, caller=caller, prompt=prompt)
            return await sse_response(request, events, COMPLETION_CHUNKS, model=model_id, options=data.stream_options)
        outcome = await pipeline.complete(prompt, params, policy_name=policy_name, caller=caller)
        body = TextCompletion(
            id=f"cmpl-{outcome.decision_id}",
            created=created_now(),
            model=model_id,
            choices=[CompletionChoice(index=0, text=outcome.text, finish_reason=outcome.finish_reason)],
            usage=usage(outcome),
            guard=guard_info(outcome),
        )
        return Response(body, headers={"X-Guard-Decision-Id": outcome.decision_id})
