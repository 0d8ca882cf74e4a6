"""What the two generation routes (chat and raw completions) share: reading a request and answering a stream.

The order of the refusals is the API's: an unknown model (404), then bad decoding settings (400), then a bad payload
(400), then a policy the key may not use (403).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema

from guard.api.auth import caller_of, policy_for, require_scope
from guard.api.errors import ERROR_RESPONSES, ParameterError
from guard.api.parameters import refuse_unhonoured
from guard.api.schemas import ChatCompletionRequest, CompletionRequest, StreamOptions
from guard.api.streaming import ChunkShape, sse_response
from guard.engine import ChatMessage, SamplingParams
from guard.pipeline import Caller, Pipeline

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "GenerationController",
    "GenerationRequest",
    "bad_request",
    "check_model",
    "generation_route",
    "read_generation",
    "sampling",
]

DEFAULT_MAX_TOKENS = 256
_Payload = TypeVar("_Payload")


def bad_request(message: str, param: str | None = None) -> ParameterError:
    return ParameterError(message, param=param)


def sampling(
    data: ChatCompletionRequest | CompletionRequest, *, max_tokens: int | None, logprobs: int | None = None
) -> SamplingParams:
    """The request's decoding settings (OpenAI defaults: temperature 1, top_p 1); ``logprobs``: how many
    alternatives per token (0: the chosen token's only; ``None``: none)."""
    refuse_unhonoured(data)
    stop = (data.stop,) if isinstance(data.stop, str) else tuple(data.stop or ())
    return SamplingParams(
        max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
        temperature=1.0 if data.temperature is None else data.temperature,
        top_p=1.0 if data.top_p is None else data.top_p,
        top_k=data.top_k or 0,
        seed=data.seed,
        stop=stop,
        logprobs=logprobs,
    )


def check_model(pipeline: Pipeline, requested: str) -> str:
    model_id = pipeline.engine.model_id
    if requested not in ("default", model_id):
        raise NotFoundException(f"model not found; this gateway serves {model_id!r}")
    return model_id


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One generation request as the pipeline takes it."""

    pipeline: Pipeline
    model_id: str
    params: SamplingParams
    policy_name: str | None
    caller: Caller

    async def streamed(
        self,
        request: Request[Any, Any, Any],
        shape: ChunkShape,
        options: StreamOptions | None,
        *,
        messages: list[ChatMessage] | None = None,
        prompt: str | None = None,
    ) -> Any:
        """The answer as server-sent events (a refusal before the stream opens raises, as a JSON error)."""
        events = self.pipeline.stream(
            self.params, policy_name=self.policy_name, caller=self.caller, messages=messages, prompt=prompt
        )
        return await sse_response(
            request, events, shape, model=self.model_id, options=options, token_bytes=self.pipeline.engine.token_bytes
        )


def read_generation(
    request: Request[Any, Any, Any],
    state: State,
    data: ChatCompletionRequest | CompletionRequest,
    max_tokens: int | None,
    payload: Callable[[], _Payload],
    *,
    logprobs: int | None = None,
) -> tuple[GenerationRequest, _Payload]:
    """The request as the pipeline takes it, and its ``payload`` (the conversation, the prompt)."""
    pipeline: Pipeline = state.pipeline
    model_id = check_model(pipeline, data.model)
    if logprobs is not None and not pipeline.engine.supports_logprobs:
        raise bad_request(f"the {pipeline.engine.name} engine does not report logprobs", "logprobs")
    params = sampling(data, max_tokens=max_tokens, logprobs=logprobs)
    read = payload()
    policy_name = policy_for(request, request.headers.get("x-guard-policy"))
    return GenerationRequest(pipeline, model_id, params, policy_name, caller_of(request)), read


class GenerationController(Controller):
    tags = ["generation"]


SSE_MEDIA_TYPE = "text/event-stream"


@dataclass
class StreamableOperation(Operation):
    """A generation route's OpenAPI operation: its 200 answer is JSON, or with ``"stream": true`` server-sent events
    (``data:`` lines of chunks, then ``data: [DONE]``), so both content types are documented."""

    def __post_init__(self) -> None:
        answer = (self.responses or {}).get("200")
        if isinstance(answer, OpenAPIResponse):
            answer.content = {
                **(answer.content or {}),
                SSE_MEDIA_TYPE: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
            }


def generation_route(path: str, *, operation_id: str) -> HTTPRouteHandler:
    """``POST path`` for keys with the ``generate`` scope."""
    return post(
        path,
        operation_id=operation_id,
        status_code=200,
        guards=[require_scope("generate")],
        responses=ERROR_RESPONSES,
        operation_class=StreamableOperation,
    )
