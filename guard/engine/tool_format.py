"""The tool-use prompt format: how offered functions, the model's calls and their results read to a Gemma model.

Gemma-2 has no tool tokens, so tools are plain text in the prompt and calls are plain text in the answer:

- the offered functions are a system text (folded into the first user turn by Gemma-2's template) made by
  :func:`tools_preamble`: two lines of instructions, then one JSON object per function
  (``{"name": ..., "description": ..., "parameters": <JSON Schema>}``);
- a call is one line ``<tool_call>{"name": "NAME", "arguments": {...}}</tool_call>``; parallel calls are several
  such lines; an answer that calls tools holds nothing else;
- an earlier call in the history is written the same way (:func:`format_calls`), and a tool's result is a user
  turn ``[tool result from NAME]`` followed by the result text (:mod:`guard.engine.chat_template`).

The in-process engine makes calls well formed by construction: :func:`tool_call_grammar` is a Lark grammar
(llguidance's dialect, each function's arguments its own ``%json`` schema) that the scheduler applies as a token
mask. :func:`parse_calls` reads the calls back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from guard.engine.grammar import with_json_options

__all__ = [
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "FunctionSpec",
    "ParsedCall",
    "ToolChoice",
    "format_call",
    "format_calls",
    "parse_calls",
    "tool_call_grammar",
    "tools_preamble",
]

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

ToolChoice = Literal["auto", "required"] | str
"""``auto`` (text or calls), ``required`` (one or more calls), or a function name (calls of that one only)."""

_INSTRUCTIONS = (
    "You can call the functions listed below. To call functions, answer with only one line per call:\n"
    f'{TOOL_CALL_OPEN}{{"name": "<function name>", "arguments": <arguments as a JSON object>}}{TOOL_CALL_CLOSE}\n'
    "Otherwise answer in plain text. Functions:"
)
_SEPARATORS = (", ", ": ")
"""The JSON spacing the grammar produces (llguidance's default): the history is written the same way."""


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A function offered to the model: its name, what it does, and the JSON Schema of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """One call read back from an answer: the function name and its arguments as JSON text."""

    name: str
    arguments: str


def tools_preamble(functions: Sequence[FunctionSpec]) -> str:
    """The system text that offers ``functions`` to the model."""
    lines = [_INSTRUCTIONS]
    for function in functions:
        entry: dict[str, Any] = {"name": function.name}
        if function.description:
            entry["description"] = function.description
        entry["parameters"] = json.loads(json.dumps(dict(function.parameters), sort_keys=True))  # order-free
        lines.append(json.dumps(entry, ensure_ascii=False, separators=_SEPARATORS))
    return "\n".join(lines)


def _normalised(arguments: str) -> str:
    """Arguments in the grammar's spacing when they are JSON (a client may send them compact), else as sent."""
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False, separators=_SEPARATORS)
    except ValueError:
        return arguments


def format_call(name: str, arguments: str) -> str:
    """One call as the model writes it."""
    return f'{TOOL_CALL_OPEN}{{"name": {json.dumps(name)}, "arguments": {_normalised(arguments)}}}{TOOL_CALL_CLOSE}'


def format_calls(calls: Sequence[tuple[str, str]]) -> str:
    """Calls ``(name, arguments)`` as the model writes them, one per line."""
    return "\n".join(format_call(name, arguments) for name, arguments in calls)


_DECODER = json.JSONDecoder()


def parse_calls(text: str) -> list[ParsedCall] | None:
    """The calls an answer makes, or ``None`` when it is not (only) calls in the format above. Each call's JSON is
    decoded as JSON (a string value may itself contain the closing marker)."""
    stripped = text.strip()
    calls: list[ParsedCall] = []
    position = 0
    while position < len(stripped):
        if not stripped.startswith(TOOL_CALL_OPEN, position):
            return None
        try:
            body, end = _DECODER.raw_decode(stripped, position + len(TOOL_CALL_OPEN))
        except ValueError:
            return None
        if not stripped.startswith(TOOL_CALL_CLOSE, end):
            return None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return None
        arguments = body.get("arguments", {})
        calls.append(ParsedCall(body["name"], json.dumps(arguments, ensure_ascii=False, separators=_SEPARATORS)))
        position = end + len(TOOL_CALL_CLOSE)
        while position < len(stripped) and stripped[position] in " \n":
            position += 1
    return calls or None


def _lark_string(text: str) -> str:
    return json.dumps(text)


def tool_call_grammar(
    functions: Sequence[FunctionSpec],
    choice: ToolChoice,
    *,
    parallel: bool,
    answer_schema: Mapping[str, Any] | None = None,
) -> str:
    """A Lark grammar (llguidance's dialect) for an answer under ``choice``: calls of the offered functions (of the
    named one only), each with arguments valid under its schema; with ``auto``, the other way to answer is plain
    text not starting with a call, or JSON valid under ``answer_schema`` when one is given (``response_format``).
    ``parallel``: one or more calls, else exactly one; a named function is called exactly once (as vLLM does)."""
    offered = [f for f in functions if choice in ("auto", "required") or f.name == choice]
    if not offered:
        raise ValueError(f"no offered function is named {choice!r}")
    rules = []
    for number, function in enumerate(offered):
        schema = json.dumps(with_json_options(function.parameters), separators=(",", ":"))
        head = _lark_string(f'{TOOL_CALL_OPEN}{{"name": {json.dumps(function.name)}, "arguments": ')
        rules.append(f"fn{number}: {head} args{number} {_lark_string('}' + TOOL_CALL_CLOSE)}")
        rules.append(f"args{number}: %json {schema}")
    call = "call: " + " | ".join(f"fn{number}" for number in range(len(offered)))
    single = not parallel or choice not in ("auto", "required")
    calls = "calls: call" if single else 'calls: call ("\\n" call)*'
    if choice == "auto" and answer_schema is not None:
        start = f"start: calls | answer\nanswer: %json {json.dumps(with_json_options(answer_schema))}"
    elif choice == "auto":
        # Text that is not a call: anything at all, except what starts with the call marker.
        marker = re.escape(TOOL_CALL_OPEN).replace("/", "\\/")
        start = f"start: calls | TEXT\nTEXT: /(.|\\n)+/ & ~/{marker}(.|\\n)*/"
    else:
        start = "start: calls"
    return "\n".join(["%llguidance {}", start, calls, call, *rules])
