"""``POST /v1/completions``: raw continuation for base models (Gemma-1 gemma-mling and the like), no template."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.datastructures import State

from guard.api.answers import created_now, guard_info, usage
from guard.api.generation import GenerationController, bad_request, generation_route, read_generation
from guard.api.logprobs import completion_logprobs
from guard.api.schemas import CompletionChoice, CompletionRequest, TextCompletion, TextCompletionChunk
from guard.api.streaming import ChunkShape

__all__ = ["COMPLETION_CHUNKS", "CompletionsController"]


COMPLETION_CHUNKS = ChunkShape(
    id_prefix="cmpl-",
    chunk=TextCompletionChunk,
    object="text_completion",
    content=lambda text, logprobs, token_bytes: CompletionChoice(
        index=0,
        text=text,
        finish_reason=None,
        logprobs=completion_logprobs(logprobs, token_bytes) if logprobs else None,
    ),
    finish=lambda reason: CompletionChoice(index=0, text="", finish_reason=reason),
)
"""Completion chunks: ``text`` pieces, no opening chunk."""


class CompletionsController(GenerationController):
    @generation_route("/completions", operation_id="createCompletion")
    async def create_completion(self, request: Request[Any, Any, Any], state: State, data: CompletionRequest) -> Any:
        """Continue ``prompt`` (the model's ``<bos>`` is added); checked and audited like a chat. ``echo`` puts the
        prompt as sent before the answer (not with ``stream`` or ``logprobs``: the prompt's own logprobs are not
        computed)."""
        if data.echo and (data.stream or data.logprobs is not None):
            raise bad_request("echo is supported without stream and logprobs only", "echo")
        run, prompt = read_generation(
            request,
            state,
            data,
            data.max_tokens,
            lambda: data.prompt if isinstance(data.prompt, str) else data.prompt[0],
            logprobs=data.logprobs,
        )
        if data.stream:
            return await run.streamed(request, COMPLETION_CHUNKS, data.stream_options, prompt=prompt)
        outcome = await run.pipeline.complete(prompt, run.params, policy_name=run.policy_name, caller=run.caller)
        echoed = prompt if data.echo else ""
        logprobs = outcome.logprobs
        body = TextCompletion(
            id=f"cmpl-{outcome.decision_id}",
            created=created_now(),
            model=run.model_id,
            choices=[
                CompletionChoice(
                    index=0,
                    text=echoed + outcome.text,
                    finish_reason=outcome.finish_reason,
                    logprobs=completion_logprobs(logprobs, run.pipeline.engine.token_bytes)
                    if logprobs is not None
                    else None,
                )
            ],
            usage=usage(outcome),
            guard=guard_info(outcome),
        )
        return Response(body, headers={"X-Guard-Decision-Id": outcome.decision_id})
