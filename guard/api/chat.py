"""OpenAI-compatible generation: ``POST /v1/chat/completions`` and ``GET /v1/models``."""

from __future__ import annotations

import re
from typing import Any, Literal

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException

from guard.api.answers import created_now, guard_info, usage
from guard.api.auth import require_scope
from guard.api.errors import ERROR_RESPONSES
from guard.api.generation import GenerationController, bad_request, generation_route, read_generation
from guard.api.logprobs import TokenBytes, chat_logprobs
from guard.api.schemas import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessageIn,
    ChatMessageOut,
    ChoiceLogprobs,
    ChunkChoice,
    ChunkDelta,
    ContentPart,
    FunctionCallOut,
    FunctionDelta,
    ModelCard,
    ModelList,
    ToolCallDelta,
    ToolCallOut,
)
from guard.api.streaming import ChunkShape, buffered_sse, text_pieces
from guard.api.structured import read_structure
from guard.engine import ChatMessage, TokenLogprob
from guard.engine.tool_format import format_calls
from guard.pipeline import ChatOutcome, Pipeline

__all__ = ["CHAT_CHUNKS", "ChatController", "to_conversation"]

Role = Literal["system", "user", "assistant", "tool"]

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""OpenAI's rule for function names; a name reaches the prompt unchecked, so nothing else is let through."""


def _parts_text(parts: list[ContentPart], index: int) -> str:
    texts = []
    for number, part in enumerate(parts):
        text = part.text if part.type == "text" else part.refusal if part.type == "refusal" else None
        if text is None:
            raise bad_request("only text content parts are supported", f"messages.{index}.content.{number}.type")
        texts.append(text)
    return "".join(texts)


def _tool_name(name: str | None, param: str) -> str | None:
    if name is not None and not _TOOL_NAME.fullmatch(name):
        raise bad_request("a tool or function name must match [A-Za-z0-9_.-]{1,64}", param)
    return name


def _calls_text(message: ChatMessageIn, index: int) -> str:
    """An assistant's earlier tool calls as the model writes them (:mod:`guard.engine.tool_format`)."""
    functions = [call.function for call in message.tool_calls or []]
    if message.function_call is not None:
        functions.append(message.function_call)
    calls = []
    for number, function in enumerate(functions):
        name = _tool_name(function.name, f"messages.{index}.tool_calls.{number}.function.name")
        calls.append((name or "", function.arguments))
    return format_calls(calls)


def to_conversation(data: ChatCompletionRequest) -> list[ChatMessage]:
    """The messages as the pipeline takes them, one per message (findings' ``message_index`` is the caller's)."""
    conversation = []
    names: dict[str, str] = {}  # tool_call_id -> the function it called, to label its result
    for index, message in enumerate(data.messages):
        content = message.content
        text = _parts_text(content, index) if isinstance(content, list) else content
        if message.role == "assistant":
            for call in message.tool_calls or []:
                if call.id:
                    names[call.id] = call.function.name
            calls = _calls_text(message, index)
            text = "\n".join(t for t in (text if text is not None else message.refusal, calls) if t)
        if text is None:
            raise bad_request("this message needs text content", f"messages.{index}.content")
        name = None
        if message.role in ("tool", "function"):
            name = names.get(message.tool_call_id or "") or _tool_name(message.name, f"messages.{index}.name")
        call_id = message.tool_call_id if message.role == "tool" else None
        conversation.append(ChatMessage(role=_ROLES[message.role], content=text, name=name, tool_call_id=call_id))
    return conversation


def _tool_calls(outcome: ChatOutcome) -> list[ToolCallOut] | None:
    calls = [
        ToolCallOut(id=c.id, function=FunctionCallOut(name=c.name, arguments=c.arguments)) for c in outcome.tool_calls
    ]
    return calls or None


def _message(outcome: ChatOutcome) -> ChatMessageOut:
    calls = _tool_calls(outcome)
    return ChatMessageOut(role="assistant", content=None if calls else outcome.text, tool_calls=calls)


def _buffered_chunks(outcome: ChatOutcome, model: str, include_usage: bool) -> list[ChatCompletionChunk]:
    """A whole checked answer as OpenAI's chunks: the role, the text word by word or each call (id and name, then
    its arguments), the finish reason with ``guard``, and the usage when asked."""
    chunk_id, created = f"chatcmpl-{outcome.decision_id}", created_now()

    def chunk(choices: list[ChunkChoice], **extra: Any) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=chunk_id, created=created, model=model, object="chat.completion.chunk", choices=choices, **extra
        )

    chunks = [chunk([ChunkChoice(index=0, delta=ChunkDelta(role="assistant", content=""))])]
    if outcome.tool_calls:
        for number, call in enumerate(outcome.tool_calls):
            head = ToolCallDelta(
                index=number, id=call.id, type="function", function=FunctionDelta(name=call.name, arguments="")
            )
            body = ToolCallDelta(index=number, function=FunctionDelta(arguments=call.arguments))
            chunks += [chunk([ChunkChoice(index=0, delta=ChunkDelta(tool_calls=[d]))]) for d in (head, body)]
    else:
        chunks += [chunk([ChunkChoice(index=0, delta=ChunkDelta(content=p))]) for p in text_pieces(outcome.text)]
    chunks.append(
        chunk(
            [ChunkChoice(index=0, delta=ChunkDelta(), finish_reason=outcome.finish_reason)], guard=guard_info(outcome)
        )
    )
    if include_usage:
        chunks.append(chunk([], usage=usage(outcome)))
    return chunks


def _completion(outcome: ChatOutcome, model: str, token_bytes: TokenBytes) -> ChatCompletion:
    logprobs = chat_logprobs(outcome.logprobs, token_bytes) if outcome.logprobs is not None else None
    return ChatCompletion(
        id=f"chatcmpl-{outcome.decision_id}",
        created=created_now(),
        model=model,
        choices=[
            ChatChoice(
                index=0,
                message=_message(outcome),
                finish_reason=outcome.finish_reason,
                logprobs=logprobs,
            )
        ],
        usage=usage(outcome),
        guard=guard_info(outcome),
    )


def _chunk_logprobs(entries: tuple[TokenLogprob, ...] | None, token_bytes: TokenBytes) -> ChoiceLogprobs | None:
    return chat_logprobs(entries, token_bytes) if entries else None


CHAT_CHUNKS = ChunkShape(
    id_prefix="chatcmpl-",
    chunk=ChatCompletionChunk,
    object="chat.completion.chunk",
    content=lambda text, logprobs, token_bytes: ChunkChoice(
        index=0, delta=ChunkDelta(content=text), logprobs=_chunk_logprobs(logprobs, token_bytes)
    ),
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
        logprobs = (data.top_logprobs or 0) if data.logprobs else None
        run, conversation = read_generation(
            request, state, data, max_tokens, lambda: to_conversation(data), logprobs=logprobs
        )
        structure = read_structure(data, run.pipeline.engine)
        if data.stream and structure is None:
            return await run.streamed(request, CHAT_CHUNKS, data.stream_options, messages=conversation)
        outcome = await run.pipeline.chat(
            conversation, run.params, policy_name=run.policy_name, caller=run.caller, structure=structure
        )
        if data.stream:  # checked whole (the calls' arguments, the JSON), then sent as chunks
            include_usage = bool(data.stream_options and data.stream_options.include_usage)
            return buffered_sse(_buffered_chunks(outcome, run.model_id, include_usage), outcome.decision_id)
        body = _completion(outcome, run.model_id, run.pipeline.engine.token_bytes)
        return Response(body, headers={"X-Guard-Decision-Id": outcome.decision_id})

    @get("/models", operation_id="listModels", guards=[require_scope("generate")], responses=ERROR_RESPONSES)
    async def list_models(self, state: State) -> ModelList:
        """The served model (OpenAI shape); requests may name it or ``default``."""
        pipeline: Pipeline = state.pipeline
        return ModelList(data=[ModelCard(id=pipeline.engine.model_id, created=int(state.started_at))])

    @get(
        "/models/{model:path}",
        operation_id="retrieveModel",
        guards=[require_scope("generate")],
        responses=ERROR_RESPONSES,
    )
    async def retrieve_model(self, state: State, model: str) -> ModelCard:
        """One model by id (ids contain a slash: ``google/gemma-2-2b-it``); ``default`` names the served one."""
        pipeline: Pipeline = state.pipeline
        if model.lstrip("/") not in ("default", pipeline.engine.model_id):
            raise NotFoundException("model not found")
        return ModelCard(id=pipeline.engine.model_id, created=int(state.started_at))
