"""``tools``, ``tool_choice``, ``parallel_tool_calls`` and ``response_format`` of a chat request, read into what
constrains the answer (:class:`~guard.pipeline.Structure`). Every schema is compiled here, so a bad one is a 400
naming the parameter at fault, before any check runs."""

from __future__ import annotations

import re
from typing import Any

from guard.api.errors import ParameterError
from guard.api.schemas import ChatCompletionRequest
from guard.engine import Engine
from guard.engine.grammar import InvalidGrammar, json_schema_grammar
from guard.engine.tool_format import FunctionSpec
from guard.pipeline import Structure, ToolRequest

__all__ = ["read_structure"]

_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""OpenAI's rule for function names (the name reaches the prompt and the grammar)."""
_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def _compiled(engine: Engine, schema: Any, param: str) -> None:
    try:
        engine.check_grammar(json_schema_grammar(schema))
    except InvalidGrammar as exc:
        raise ParameterError(str(exc), param=param, code="invalid_schema") from None


def _functions(data: ChatCompletionRequest, engine: Engine) -> tuple[FunctionSpec, ...]:
    functions: list[FunctionSpec] = []
    for index, tool in enumerate(data.tools or []):
        name, param = tool.function.name, f"tools.{index}.function"
        if not _FUNCTION_NAME.fullmatch(name):
            raise ParameterError("a function name must match [A-Za-z0-9_-]{1,64}", param=f"{param}.name")
        if any(f.name == name for f in functions):
            raise ParameterError("function names must be unique", param=f"{param}.name")
        parameters = tool.function.parameters if tool.function.parameters is not None else _EMPTY_PARAMETERS
        _compiled(engine, parameters, f"{param}.parameters")
        functions.append(FunctionSpec(name, tool.function.description or "", parameters))
    return tuple(functions)


def _choice(data: ChatCompletionRequest, functions: tuple[FunctionSpec, ...]) -> str:
    choice = data.tool_choice
    if choice is None:
        return "auto" if functions else "none"
    name = choice if isinstance(choice, str) else choice.function.name
    if not functions and name != "none":
        raise ParameterError("tool_choice needs tools", param="tool_choice")
    if not isinstance(choice, str) and not any(f.name == name for f in functions):
        raise ParameterError(f"tool_choice names a function not in tools: {name[:64]!r}", param="tool_choice")
    return name


def _answer_schema(data: ChatCompletionRequest, engine: Engine) -> dict[str, Any] | None:
    fmt = data.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.json_schema is None or fmt.json_schema.schema is None:
        raise ParameterError("json_schema needs a schema", param="response_format.json_schema.schema")
    _compiled(engine, fmt.json_schema.schema, "response_format.json_schema.schema")
    return fmt.json_schema.schema


def read_structure(data: ChatCompletionRequest, engine: Engine) -> Structure | None:
    """What constrains the answer, or ``None`` for a plain request; raises :class:`ParameterError` (400)."""
    asked = bool(data.tools) or (data.response_format is not None and data.response_format.type != "text")
    if data.tool_choice is not None and not data.tools and data.tool_choice != "none":
        raise ParameterError("tool_choice needs tools", param="tool_choice")
    if not asked:
        return None
    if not engine.supports_grammars:
        param = "tools" if data.tools else "response_format"
        raise ParameterError(
            f"the {engine.name} engine does not constrain decoding: {param} cannot be honoured",
            param=param,
            code="unsupported_parameter",
        )
    functions = _functions(data, engine)
    choice = _choice(data, functions)
    parallel = data.parallel_tool_calls is not False
    tools = ToolRequest(functions, choice, parallel) if functions else None
    return Structure(tools=tools, json_schema=_answer_schema(data, engine))
