"""Request and response bodies (msgspec Structs). Requests reject unknown fields, as OpenAI does; documented
OpenAI parameters that guard cannot honour are parsed here and refused by name (:mod:`guard.api.parameters`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from guard.checks import Finding

__all__ = [
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessageIn",
    "ChatMessageOut",
    "ChoiceLogprobs",
    "ChunkChoice",
    "ChunkDelta",
    "CompletionChoice",
    "CompletionLogprobs",
    "CompletionRequest",
    "FunctionCallOut",
    "FunctionDelta",
    "GuardInfo",
    "ModelCard",
    "ModelList",
    "PolicyStamp",
    "ResponseFormat",
    "ScanRequest",
    "ScanResponse",
    "TextCompletion",
    "TextCompletionChunk",
    "TokenLogprobOut",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallOut",
    "ToolDefinition",
    "TopLogprob",
    "Usage",
]


class _Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ContentPart(_Request):
    type: str
    text: str | None = None
    refusal: str | None = None
    image_url: Any = None
    input_audio: Any = None
    file: Any = None


class FunctionCall(_Request):
    name: str
    arguments: str = ""


class ToolCall(_Request):
    """A call in an assistant message of the history (an agent loop's earlier turn)."""

    function: FunctionCall
    id: str | None = None
    type: Literal["function"] = "function"
    index: int | None = None


class FunctionDefinition(_Request):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(_Request):
    """A tool offered to the model (``tools``): a function and the JSON Schema of its arguments."""

    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(_Request):
    name: str


class NamedToolChoice(_Request):
    type: Literal["function"]
    function: FunctionName


class JsonSchemaFormat(_Request):
    name: str
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Request):
    """``response_format``: plain text, any JSON object, or JSON valid under a schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class ChatMessageIn(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None
    refusal: str | None = None
    audio: Any = None


class StreamOptions(_Request):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class _Generation(_Request):
    """Parameters both generation routes take."""

    model: str = "default"
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Meta(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    """Not an OpenAI parameter (vLLM's): clients send it in ``extra_body``."""
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    seed: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: str | None = None
    n: Annotated[int, Meta(ge=1)] | None = None
    # Documented OpenAI parameters the engine does not apply: refused when set (guard.api.parameters).
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None


class ChatCompletionRequest(_Generation, kw_only=True):
    messages: Annotated[list[ChatMessageIn], Meta(min_length=1, max_length=256)]
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    # Documented OpenAI parameters: those that would change the answer are refused when set (guard.api.parameters);
    # user, metadata, store, service_tier, prompt_cache_key and safety_identifier have no effect on it.
    response_format: ResponseFormat | None = None
    tools: Annotated[list[ToolDefinition], Meta(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: Any = None
    function_call: Any = None
    metadata: dict[str, str] | None = None
    modalities: list[str] | None = None
    audio: Any = None
    prediction: Any = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    service_tier: str | None = None
    store: bool | None = None
    web_search_options: Any = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None


class CompletionRequest(_Generation, kw_only=True):
    """``POST /v1/completions``: raw text continuation (base models such as gemma-mling)."""

    prompt: str | Annotated[list[str], Meta(min_length=1, max_length=1)]
    logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    echo: bool | None = None
    # Documented OpenAI parameters, refused when set (guard.api.parameters).
    best_of: int | None = None
    suffix: str | None = None


class ScanRequest(_Request):
    text: str
    stage: Literal["input", "output"] = "input"
    policy: str | None = None
    context: str | None = None
    """For ``stage: output``: the (redacted) request the text answers, which the prohibited-use classifier reads
    beside the answer (a refusal of a harmful request is not harmful; its compliance is). Never stored."""


class PolicyStamp(msgspec.Struct):
    name: str
    version: str
    sha256: str


class GuardInfo(msgspec.Struct):
    decision_id: str
    decision: str
    policy: PolicyStamp
    findings: list[Finding]


class FunctionCallOut(msgspec.Struct):
    name: str
    arguments: str


class ToolCallOut(msgspec.Struct):
    id: str
    function: FunctionCallOut
    type: str = "function"


class ChatMessageOut(msgspec.Struct, omit_defaults=True):
    """The answer: ``content`` (``null`` when it calls tools) and the checked ``tool_calls``."""

    role: str
    content: str | None
    tool_calls: list[ToolCallOut] | None = None


class TopLogprob(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprobOut(msgspec.Struct):
    """OpenAI's per-token entry: the token as text (``bytes`` are exact where a token is part of a character)."""

    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(msgspec.Struct):
    content: list[TokenLogprobOut] | None
    refusal: None = None


class CompletionLogprobs(msgspec.Struct):
    """The legacy completions shape: parallel lists, one entry per token."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class ChatChoice(msgspec.Struct):
    index: int
    message: ChatMessageOut
    finish_reason: str
    logprobs: ChoiceLogprobs | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    guard: GuardInfo
    object: str = "chat.completion"


class CompletionChoice(msgspec.Struct):
    index: int
    text: str
    finish_reason: str | None
    logprobs: CompletionLogprobs | None = None


class TextCompletion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    guard: GuardInfo
    object: str = "text_completion"


class FunctionDelta(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct, omit_defaults=True):
    """A piece of a streamed tool call (OpenAI's shape: the first carries id, type and name)."""

    index: int
    function: FunctionDelta
    id: str | None = None
    type: str | None = None


class ChunkDelta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(msgspec.Struct):
    index: int
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(msgspec.Struct, omit_defaults=True):
    """One SSE event of a streamed chat completion; the last carries ``guard`` (and ``usage`` when asked).

    ``object`` has no default so that ``omit_defaults`` (which drops the empty ``usage``/``guard``) keeps it."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    object: Literal["chat.completion.chunk"]
    usage: Usage | None = None
    guard: GuardInfo | None = None


class TextCompletionChunk(msgspec.Struct, omit_defaults=True):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    object: Literal["text_completion"]
    usage: Usage | None = None
    guard: GuardInfo | None = None


class ScanResponse(msgspec.Struct):
    decision_id: str
    decision: str
    redacted_text: str
    findings: list[Finding]
    policy: PolicyStamp


class ModelCard(msgspec.Struct):
    id: str
    created: int
    owned_by: str = "guard"
    object: str = "model"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: str = "list"
