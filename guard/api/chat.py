"""OpenAI-compatible generation: ``POST /v1/chat/completions`` and ``GET /v1/models``."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State

from guard.api.answers import created_now, guard_info, usage
from guard.api.auth import require_scope
from guard.api.errors import ERROR_RESPONSES
from guard.api.generation import GenerationController, bad_request, generation_route, read_generation
from guard.api.schemas import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessageIn,
    ChatMessageOut,
    ChunkChoice,
    ChunkDelta,
    ModelCard,
    ModelList,
)
from guard.api.streaming import ChunkShape
from guard.engine import ChatMessage
from guard.pipeline import ChatOutcome, Pipeline

__all__ = ["CHAT_CHUNKS", "ChatController"]

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _message_text(message: ChatMessageIn) -> str:
    if message.content is None:
        raise bad_request("every message needs text content")
    if isinstance(message.content, str):
        return message.content
    texts = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise bad_request("only text content parts are supported")
        texts.append(part.text)
    return "".join(texts)


def _to_conversation(data: ChatCompletionRequest) -> list[ChatMessage]:
    conversation = []
    for message in data.messages:
        if message.role == "tool":
            raise bad_request("tool messages are not supported")
        conversation.append(ChatMessage(role=_ROLES[message.role], content=_message_text(message)))  # type: ignore[arg-type]
    return conversation


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


class ChatController(GenerationController):
    @generation_route("/chat/completions", operation_id="createChatCompletion")
    async def create_chat_completion(
        self, request: Request[Any, Any, Any], state: State, data: ChatCompletionRequest
    ) -> Any:
        """Generate a reply with the policy's checks before and after; the audit row is committed first.

        With ``stream: true`` the answer is OpenAI-style server-sent events (see the README for the audit order)."""
        max_tokens = data.max_completion_tokens or data.max_tokens
        run, conversation = read_generation(request, state, data, max_tokens, lambda: _to_conversation(data))
        if data.stream:
            return await run.streamed(request, CHAT_CHUNKS, data.stream_options, messages=conversation)
        outcome = await run.pipeline.chat(conversation, run.params, policy_name=run.policy_name, caller=run.caller)
        return Response(_completion(outcome, run.model_id), headers={"X-Guard-Decision-Id": outcome.decision_id})

    @get("/models", operation_id="listModels", guards=[require_scope("generate")], responses=ERROR_RESPONSES)
    async def list_models(self, state: State) -> ModelList:
        """The served model (OpenAI shape); requests may name it or ``default``."""
        pipeline: Pipeline = state.pipeline
        return ModelList(data=[ModelCard(id=pipeline.engine.model_id, created=int(state.started_at))])
