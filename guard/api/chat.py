"""OpenAI-compatible generation: ``POST /v1/chat/completions`` and ``GET /v1/models``."""

from __future__ import annotations

import time
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, ValidationException

from guard.api.schemas import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageIn,
    ChatMessageOut,
    GuardInfo,
    ModelCard,
    ModelList,
    PolicyStamp,
    Usage,
)
from guard.engine import ChatMessage, SamplingParams
from guard.pipeline import Caller, ChatOutcome, Pipeline

__all__ = ["DEFAULT_MAX_TOKENS", "ChatController", "caller_of", "stamp"]

DEFAULT_MAX_TOKENS = 256
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def caller_of(request: Request[Any, Any, Any]) -> Caller:
    return Caller(key_id=request.scope.get("state", {}).get("key_id"))


def stamp(outcome: Any) -> PolicyStamp:
    policy = outcome.policy
    return PolicyStamp(name=policy.name, version=policy.version, sha256=policy.sha256)


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


def _sampling(data: ChatCompletionRequest) -> SamplingParams:
    if data.stream:
        raise _bad("stream=true is not supported yet")
    if data.n not in (None, 1):
        raise _bad("only n=1 is supported")
    stop = (data.stop,) if isinstance(data.stop, str) else tuple(data.stop or ())
    return SamplingParams(
        max_tokens=data.max_completion_tokens or data.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=1.0 if data.temperature is None else data.temperature,
        top_p=1.0 if data.top_p is None else data.top_p,
        seed=data.seed,
        stop=stop,
    )


def _completion(outcome: ChatOutcome, model: str) -> ChatCompletion:
    return ChatCompletion(
        id=f"chatcmpl-{outcome.decision_id}",
        created=int(time.time()),
        model=model,
        choices=[
            ChatChoice(
                index=0,
                message=ChatMessageOut(role="assistant", content=outcome.text),
                finish_reason=outcome.finish_reason,
            )
        ],
        usage=Usage(
            prompt_tokens=outcome.tokens_in,
            completion_tokens=outcome.tokens_out,
            total_tokens=outcome.tokens_in + outcome.tokens_out,
        ),
        guard=GuardInfo(
            decision_id=outcome.decision_id,
            decision=outcome.decision,
            policy=stamp(outcome),
            findings=outcome.findings,
        ),
    )


class ChatController(Controller):
    tags = ["generation"]

    @post("/chat/completions", operation_id="createChatCompletion", status_code=200)
    async def create_chat_completion(
        self, request: Request[Any, Any, Any], state: State, data: ChatCompletionRequest
    ) -> Response[ChatCompletion]:
        """Generate a reply with the policy's checks before and after; the audit row is committed first."""
        pipeline: Pipeline = state.pipeline
        model_id = pipeline.engine.model_id
        if data.model not in ("default", model_id):
            raise NotFoundException(f"model not found; this gateway serves {model_id!r}")
        outcome = await pipeline.chat(
            _to_conversation(data),
            _sampling(data),
            policy_name=request.headers.get("x-guard-policy"),
            caller=caller_of(request),
        )
        return Response(_completion(outcome, model_id), headers={"X-Guard-Decision-Id": outcome.decision_id})

    @get("/models", operation_id="listModels")
    async def list_models(self, state: State) -> ModelList:
        """The served model (OpenAI shape); requests may name it or ``default``."""
        pipeline: Pipeline = state.pipeline
        return ModelList(data=[ModelCard(id=pipeline.engine.model_id, created=int(state.started_at))])
