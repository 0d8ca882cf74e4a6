"""Parameters the gateway cannot honour are refused by name (a 400 with ``param``), never silently ignored.

What is accepted without effect is only what has none on the answer (``user``, ``metadata``, ``store``,
``service_tier``, caching and safety identifiers, ``parallel_tool_calls`` without tools). ``tools`` and
``response_format`` are read by :mod:`guard.api.structured`; the legacy ``functions``/``function_call`` are
refused (send ``tools``)."""

from __future__ import annotations

from typing import Any

from guard.api.errors import ParameterError
from guard.api.schemas import ChatCompletionRequest, CompletionRequest

__all__ = ["refuse_unhonoured"]

_NEUTRAL_TOOL_CHOICE = (None, "none", "auto")


def _refuse(param: str, why: str) -> ParameterError:
    message = f"'{param}' is not supported by this gateway: {why}"
    return ParameterError(message, param=param, code="unsupported_parameter")


def _is_set(value: Any) -> bool:
    """A value that would change the answer: not absent, not empty, not zero."""
    return value not in (None, 0, 0.0, "", [], {})


def _shared(data: ChatCompletionRequest | CompletionRequest) -> None:
    if data.n not in (None, 1):
        raise _refuse("n", "only one choice (n=1) is generated")
    for name in ("frequency_penalty", "presence_penalty", "logit_bias"):
        if _is_set(getattr(data, name)):
            raise _refuse(name, "the engine applies no penalties or biases")


def _chat(data: ChatCompletionRequest) -> None:
    if _is_set(data.functions):
        raise _refuse("functions", "the legacy functions parameter is not supported: send tools")
    if data.function_call not in _NEUTRAL_TOOL_CHOICE:
        raise _refuse("function_call", "the legacy function_call parameter is not supported: send tool_choice")
    if data.top_logprobs is not None and not data.logprobs:
        raise ParameterError("'top_logprobs' needs 'logprobs': true", param="top_logprobs")
    if data.modalities is not None and data.modalities != ["text"]:
        raise _refuse("modalities", "the model answers text only")
    for name in ("audio", "prediction", "web_search_options", "reasoning_effort", "verbosity"):
        if getattr(data, name) is not None:
            raise _refuse(name, "the served model has no such feature")


def _completion(data: CompletionRequest) -> None:
    if data.best_of not in (None, 1):
        raise _refuse("best_of", "only one candidate is generated")
    if data.suffix is not None:
        raise _refuse("suffix", "the model does not fill in the middle")


def refuse_unhonoured(data: ChatCompletionRequest | CompletionRequest) -> None:
    """Raise :class:`ParameterError` for the first parameter the gateway would otherwise ignore."""
    _shared(data)
    if isinstance(data, ChatCompletionRequest):
        _chat(data)
    else:
        _completion(data)
