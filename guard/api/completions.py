"""``POST /v1/completions``: raw continuation for base models (Gemma-1 gemma-mling and the like), no template."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.datastructures import State

from guard.api.auth import caller_of, policy_for, require_scope
from guard.api.chat import check_model, guard_info, sampling, usage
from guard.api.errors import ERROR_RESPONSES
from guard.api.schemas import CompletionChoice, CompletionRequest, TextCompletion, TextCompletionChunk
from guard.api.streaming import ChunkWriter, created_now, sse_response
from guard.pipeline import ChatOutcome, Pipeline, Turn

__all__ = ["CompletionsController"]


def _chunk_writer(turn: Turn, model: str, include_usage: bool) -> ChunkWriter:
    chunk_id, created = f"cmpl-{turn.decision_id}", created_now()

    def chunk(text: str, finish: str | None = None, **extra: Any) -> TextCompletionChunk:
        choice = CompletionChoice(index=0, text=text, finish_reason=finish)
        return TextCompletionChunk(
            id=chunk_id, created=created, model=model, object="text_completion", choices=[choice], **extra
        )

    def usage_chunk(outcome: ChatOutcome) -> TextCompletionChunk:
        return TextCompletionChunk(
            id=chunk_id, created=created, model=model, object="text_completion", choices=[], usage=usage(outcome)
        )

    return ChunkWriter(
        opening=None,
        content=chunk,
        finish=lambda outcome: chunk("", outcome.finish_reason, guard=guard_info(outcome)),
        usage=usage_chunk if include_usage else None,
    )


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
            turn = await pipeline.open_stream(params, policy_name=policy_name, caller=caller, prompt=prompt)
            include_usage = bool(data.stream_options and data.stream_options.include_usage)
            return sse_response(request, pipeline, turn, _chunk_writer(turn, model_id, include_usage))
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
