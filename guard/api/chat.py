"""OpenAI-compatible generation: ``POST /v1/chat/completions`` and ``GET /v1/models``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, ValidationException

from guard.api.answers import created_now, guard_info, usage
from guard.api.auth import caller_of, policy_for, require_scope
from guard.api.errors import ERROR_RESPONSES
from guard.api.schemas import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessageIn,
    ChatMessageOut,
    ChunkChoice,
    ChunkDelta,
    CompletionRequest,
    ModelCard,
    ModelList,
)
from guard.api.streaming import ChunkShape, sse_response
from guard.engine import ChatMessage, SamplingParams
from guard.pipeline import ChatOutcome, Pipeline

__all__ = ["CHAT_CHUNKS", "DEFAULT_MAX_TOKENS", "ChatController", "check_model", "sampling"]

DEFAULT_MAX_TOKENS = 256
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _bad(message: str) -> ValidationException:
    return ValidationException(extra=[{"message": message, "key": "request"}])


def _message_text(message: ChatMessageIn) -> str:
    if message.content is None:
        raise _bad("every message needs text content")
    if isinstance(message.content, str):
        return message.content
    texts = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise _bad("only text content parts are supported")
        texts.append(part.text)
    return "".join(texts)


def _to_conversation(data: ChatCompletionRequest) -> list[ChatMessage]:
    conversation = []
    for message in data.messages:
        if message.role == "tool":
            raise _bad("tool messages are not supported")
        conversation.append(ChatMessage(role=_ROLES[message.role], content=_message_text(message)))  # type: ignore[arg-type]
    return conversation


def sampling(data: ChatCompletionRequest | CompletionRequest, *, max_tokens: int | None) -> SamplingParams:
    """The request's decoding settings (OpenAI defaults: temperature 1, top_p 1)."""
    if data.n not in (None, 1):
        raise _bad("only n=1 is supported")
    stop = (data.stop,) if isinstance(data.stop, str) else tuple(data.stop or ())
    return SamplingParams(
        max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
        temperature=1.0 if data.temperature is None else data.temperature,
        top_p=1.0 if data.top_p is None else data.top_p,
        top_k=data.top_k or 0,
        seed=data.seed,
        stop=stop,
    )


def check_model(pipeline: Pipeline, requested: str) -> str:
    model_id = pipeline.engine.model_id
    if requested not in ("default", model_id):
        raise NotFoundException(f"model not found; this gateway serves {model_id!r}")
    return model_id


def _completion(outcome: ChatOutcome, model: str) -> ChatCompletion:
    return ChatCompletion(
        id=f"chatcmpl-{outcome.decision_id}",
        created=created_now(),
        model=model,
        choices=[
            ChatChoice(
                index=0,
                message=ChatMessageOut(role="assistant", content=outcome.text),
                finish_reason=outcome.finish_reason,
            )
        ],
        usage=usage(outcome),
        guard=guard_info(outcome),
    )


CHAT_CHUNKS = ChunkShape(
    id_prefix="chatcmpl-",
    chunk=ChatCompletionChunk,
    object="chat.completion.chunk",
    content=lambda text: ChunkChoice(index=0, delta=ChunkDelta(content=text)),
    finish=lambda reason: ChunkChoice(index=0, delta=ChunkDelta(), finish_reason=reason),
    opening=lambda: ChunkChoice(index=0, delta=ChunkDelta(role="assistant", content="")),
)
"""Chat chunks: the assistant role first, then ``delta.content`` pieces."""


class ChatController(Controller):
    tags = ["generation"]

    @post(
        "/chat/completions",
        operation_id="createChatCompletion",
        status_code=200,
        guards=[require_scope("generate")],
        responses=ERROR_RESPONSES,
    )
    async def create_chat_completion(
        self, request: Request[Any, Any, Any], state: State, data: ChatCompletionRequest
    ) -> Any:
        """Generate a reply with the policy's checks before and after; the audit row is committed first.

        With ``stream: true`` the answer is OpenAI-style server-sent events (see the README for the audit order)."""
        pipeline: Pipeline = state.pipeline
        model_id = check_model(pipeline, data.model)
        params = sampling(data, max_tokens=data.max_completion_tokens or data.max_tokens)
        conversation = _to_conversation(data)
        policy_name = policy_for(request, request.headers.get("x-guard-policy"))
        caller = caller_of(request)
        if data.stream:
            events = pipeline.stream(params, policy_name=policy_name, caller=caller, messages=conversation)
            return await sse_response(request, events, CHAT_CHUNKS, model=model_id, options=data.stream_options)
        outcome = await pipeline.chat(conversation, params, policy_name=policy_name, caller=caller)
        return Response(_completion(outcome, model_id), headers={"X-Guard-Decision-Id": outcome.decision_id})

    @get("/models", operation_id="listModels", guards=[require_scope("generate")], responses=ERROR_RESPONSES)
    async def list_models(self, state: State) -> ModelList:
        """The served model (OpenAI shape); requests may name it or ``default``."""
        pipeline: Pipeline = state.pipeline
        return ModelList(data=[ModelCard(id=pipeline.engine.model_id, created=int(state.started_at))])
