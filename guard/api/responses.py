"""OpenAI's Responses API, ``POST /v1/responses``, mapped onto the chat pipeline (same checks, same audit row).

``input`` (text, or items: messages, ``function_call`` and ``function_call_output``) and ``instructions`` become a
chat conversation; ``tools`` (flat function tools), ``tool_choice``, ``parallel_tool_calls`` and ``text.format``
become the chat request's ``tools`` and ``response_format``. Nothing is stored beyond the audit row: ``store: true``,
``previous_response_id``, ``conversation`` and ``background`` are 400s naming the parameter. With ``stream: true``
the answer is checked whole, its record committed, then sent as Responses events (``response.created`` ...
``response.completed``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response
from litestar.datastructures import State
from msgspec import Meta

from guard.api.answers import guard_info
from guard.api.chat import to_conversation
from guard.api.errors import ParameterError
from guard.api.generation import GenerationController, generation_route, read_generation
from guard.api.schemas import (
    ChatCompletionRequest,
    ChatMessageIn,
    FunctionCall,
    FunctionDefinition,
    FunctionName,
    JsonSchemaFormat,
    NamedToolChoice,
    ResponseFormat,
    ToolCall,
    ToolDefinition,
)
from guard.api.streaming import buffered_sse
from guard.api.structured import read_structure
from guard.pipeline import ChatOutcome

__all__ = ["ResponsesController", "ResponsesRequest"]

ROUTE = "/v1/responses"


class _Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class InputPart(_Request):
    type: str
    text: str | None = None


class InputItem(_Request):
    """A message (``role`` + ``content``), a ``function_call`` or a ``function_call_output``."""

    type: str = "message"
    role: Literal["user", "system", "developer", "assistant"] | None = None
    content: str | list[InputPart] | None = None
    id: str | None = None
    status: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None


class FunctionTool(_Request):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(_Request):
    type: Literal["function"]
    name: str


class TextFormat(_Request):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextOptions(_Request):
    format: TextFormat | None = None
    verbosity: str | None = None


class ResponsesRequest(_Request, kw_only=True):
    model: str = "default"
    input: str | Annotated[list[InputItem], Meta(min_length=1, max_length=256)]
    instructions: str | None = None
    tools: Annotated[list[FunctionTool], Meta(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextOptions | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Meta(gt=0.0, le=1.0)] | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    stream: bool | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    conversation: Any = None
    background: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None
    truncation: str | None = None
    include: list[str] | None = None
    reasoning: Any = None
    stream_options: Any = None


def _refuse_stateful(data: ResponsesRequest) -> None:
    """Nothing is kept beyond the audit row: parameters that need a stored response are refused by name."""
    for name, value in (
        ("store", data.store),
        ("previous_response_id", data.previous_response_id),
        ("conversation", data.conversation),
        ("background", data.background),
    ):
        if value not in (None, False):
            raise ParameterError(
                f"'{name}' is not supported: this gateway stores nothing beyond its audit row (send the whole input)",
                param=name,
                code="unsupported_parameter",
            )
    if data.reasoning is not None:
        raise ParameterError("'reasoning' is not supported by the served model", param="reasoning")


def _messages(data: ResponsesRequest) -> list[ChatMessageIn]:
    """``instructions`` and ``input`` as chat messages (consecutive function calls become one assistant turn)."""
    messages = [ChatMessageIn(role="system", content=data.instructions)] if data.instructions else []
    items = [InputItem(role="user", content=data.input)] if isinstance(data.input, str) else data.input
    for index, item in enumerate(items):
        if item.type == "function_call":
            call = ToolCall(
                id=item.call_id, function=FunctionCall(name=item.name or "", arguments=item.arguments or "")
            )
            if messages and messages[-1].role == "assistant" and messages[-1].tool_calls:
                messages[-1].tool_calls.append(call)
            else:
                messages.append(ChatMessageIn(role="assistant", tool_calls=[call]))
        elif item.type == "function_call_output":
            messages.append(ChatMessageIn(role="tool", tool_call_id=item.call_id, content=item.output or ""))
        elif item.type == "message" and item.role is not None:
            content = item.content
            text = content if isinstance(content, str) or content is None else "".join(p.text or "" for p in content)
            messages.append(ChatMessageIn(role=item.role, content=text))
        else:
            raise ParameterError(f"input items of type {item.type[:40]!r} are not supported", param=f"input.{index}")
    return messages


def _chat_request(data: ResponsesRequest) -> ChatCompletionRequest:
    tools = [
        ToolDefinition(
            type="function",
            function=FunctionDefinition(
                name=t.name, description=t.description, parameters=t.parameters, strict=t.strict
            ),
        )
        for t in data.tools or []
    ]
    choice: Any = data.tool_choice
    if isinstance(choice, NamedFunction):
        choice = NamedToolChoice(type="function", function=FunctionName(name=choice.name))
    fmt = data.text.format if data.text is not None else None
    response_format = None
    if fmt is not None:
        schema = JsonSchemaFormat(name=fmt.name or "answer", schema=fmt.schema, strict=fmt.strict)
        response_format = ResponseFormat(type=fmt.type, json_schema=schema if fmt.type == "json_schema" else None)
    return ChatCompletionRequest(
        model=data.model,
        messages=_messages(data),
        max_completion_tokens=data.max_output_tokens,
        temperature=data.temperature,
        top_p=data.top_p,
        user=data.user,
        tools=tools or None,
        tool_choice=choice,
        parallel_tool_calls=data.parallel_tool_calls,
        response_format=response_format,
    )


def _output(outcome: ChatOutcome) -> list[dict[str, Any]]:
    if outcome.tool_calls:
        return [
            {
                "type": "function_call",
                "id": f"fc_{call.id.removeprefix('call_')}",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
            for call in outcome.tool_calls
        ]
    part = {"type": "output_text", "text": outcome.text, "annotations": []}
    return [
        {
            "type": "message",
            "id": f"msg_{outcome.decision_id}",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
    ]


def _response(
    outcome: ChatOutcome, data: ResponsesRequest, model: str, status: str, output: list[Any]
) -> dict[str, Any]:
    incomplete = outcome.finish_reason == "length"
    return {
        "id": f"resp_{outcome.decision_id}",
        "object": "response",
        "created_at": int(time.time()),
        "status": ("incomplete" if incomplete else "completed") if status == "done" else status,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete and status == "done" else None,
        "error": None,
        "model": model,
        "instructions": data.instructions,
        "output": output,
        "parallel_tool_calls": data.parallel_tool_calls is not False,
        "tool_choice": "auto",
        "tools": [msgspec.to_builtins(tool) for tool in data.tools or []],
        "temperature": data.temperature,
        "top_p": data.top_p,
        "max_output_tokens": data.max_output_tokens,
        "store": False,
        "metadata": data.metadata or {},
        "usage": {
            "input_tokens": outcome.tokens_in,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": outcome.tokens_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": outcome.tokens_in + outcome.tokens_out,
        },
        "guard": msgspec.to_builtins(guard_info(outcome)),
    }


def _events(outcome: ChatOutcome, data: ResponsesRequest, model: str) -> list[dict[str, Any]]:
    """The Responses stream of a whole, checked answer (each event carries its ``type`` and ``sequence_number``)."""
    output = _output(outcome)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(outcome, data, model, "in_progress", [])},
        {"type": "response.in_progress", "response": _response(outcome, data, model, "in_progress", [])},
    ]
    for index, item in enumerate(output):
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {
                    **item,
                    "status": "in_progress",
                    **({"content": []} if item["type"] == "message" else {"arguments": ""}),
                },
            }
        )
        if item["type"] == "message":
            text = item["content"][0]["text"]
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append({"type": "response.content_part.added", **where, "part": {**item["content"][0], "text": ""}})
            events.append({"type": "response.output_text.delta", **where, "delta": text, "logprobs": []})
            events.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
            events.append({"type": "response.content_part.done", **where, "part": item["content"][0]})
        else:
            where = {"item_id": item["id"], "output_index": index}
            events.append({"type": "response.function_call_arguments.delta", **where, "delta": item["arguments"]})
            events.append({"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": _response(outcome, data, model, "done", output)})
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


class ResponsesController(GenerationController):
    @generation_route("/responses", operation_id="createResponse")
    async def create_response(self, request: Request[Any, Any, Any], state: State, data: ResponsesRequest) -> Any:
        """A Responses API answer through the chat pipeline: checked and audited like a chat completion."""
        _refuse_stateful(data)
        chat = _chat_request(data)
        run, conversation = read_generation(
            request, state, chat, chat.max_completion_tokens, lambda: to_conversation(chat)
        )
        structure = read_structure(chat, run.pipeline.engine)
        outcome = await run.pipeline.chat(
            conversation, run.params, policy_name=run.policy_name, caller=run.caller, route=ROUTE, structure=structure
        )
        if data.stream:
            return buffered_sse(_events(outcome, data, run.model_id), outcome.decision_id)
        body = _response(outcome, data, run.model_id, "done", _output(outcome))
        return Response(body, headers={"X-Guard-Decision-Id": outcome.decision_id})
