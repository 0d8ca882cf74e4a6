"""Request and response bodies (msgspec Structs). Requests reject unknown fields, as OpenAI does; documented
OpenAI parameters that guard does not implement are accepted and ignored."""

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
    "ChunkChoice",
    "ChunkDelta",
    "CompletionChoice",
    "CompletionRequest",
    "GuardInfo",
    "ModelCard",
    "ModelList",
    "PolicyStamp",
    "ScanRequest",
    "ScanResponse",
    "TextCompletion",
    "TextCompletionChunk",
    "Usage",
]


class _Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ContentPart(_Request):
    type: str
    text: str | None = None
    image_url: Any = None
    input_audio: Any = None
    file: Any = None


class ChatMessageIn(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: Any = None
    tool_call_id: str | None = None
    function_call: Any = None
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
    # Documented OpenAI parameters, accepted and ignored.
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None


class ChatCompletionRequest(_Generation, kw_only=True):
    messages: Annotated[list[ChatMessageIn], Meta(min_length=1, max_length=256)]
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None = None
    # Documented OpenAI parameters, accepted and ignored.
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: Any = None
    tools: Any = None
    tool_choice: Any = None
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
    # Documented OpenAI parameters, accepted and ignored.
    best_of: int | None = None
    echo: bool | None = None
    logprobs: int | None = None
    suffix: str | None = None


class ScanRequest(_Request):
    text: str
    stage: Literal["input", "output"] = "input"
    policy: str | None = None


class PolicyStamp(msgspec.Struct):
    name: str
    version: str
    sha256: str


class GuardInfo(msgspec.Struct):
    decision_id: str
    decision: str
    policy: PolicyStamp
    findings: list[Finding]


class ChatMessageOut(msgspec.Struct):
    role: str
    content: str


class ChatChoice(msgspec.Struct):
    index: int
    message: ChatMessageOut
    finish_reason: str
    logprobs: None = None


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
    logprobs: None = None


class TextCompletion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    guard: GuardInfo
    object: str = "text_completion"


class ChunkDelta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct):
    index: int
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: None = None


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
