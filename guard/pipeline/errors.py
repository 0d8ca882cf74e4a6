"""How a request can be refused or fail in the pipeline; the API maps each to its HTTP status.

Every error derives from :class:`guard.errors.GuardError` and keeps its standard base::

    GuardError
    ├── PolicyNotFound (LookupError)         404: the request names a policy that is not loaded
    ├── InputTooLarge (ValueError)           400: over the policy's limits.max_input_chars
    ├── InvalidParameter (ValueError)        400: a parameter out of the range this gateway serves
    ├── ContextLengthExceeded (ValueError)   400: prompt tokens plus max_tokens over the model's context
    ├── EngineOverloaded (RuntimeError)      429: the engine's waiting queue is full
    └── ServiceUnavailable (RuntimeError)    503: a check, the engine or the audit log failed (fail closed)
"""

from __future__ import annotations

from guard.errors import GuardError

__all__ = [
    "ContextLengthExceeded",
    "EngineOverloaded",
    "InputTooLarge",
    "InvalidParameter",
    "PolicyNotFound",
    "ServiceUnavailable",
]


class PolicyNotFound(GuardError, LookupError):
    """The request names a policy that is not loaded."""


class _Refused(GuardError, ValueError):
    """A refusal about one request field, ``param`` (``messages``, ``prompt``, ``max_tokens``), named to the caller."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class InputTooLarge(_Refused):
    """The request's messages exceed the policy's ``limits.max_input_chars``."""


class InvalidParameter(_Refused):
    """A request parameter is out of the range this gateway serves."""


class ContextLengthExceeded(_Refused):
    """Prompt tokens plus max_tokens exceed the model's context (HTTP 400)."""

    def __init__(self, *, prompt_tokens: int, max_tokens: int, context_length: int, param: str) -> None:
        super().__init__(f"{prompt_tokens} prompt tokens + {max_tokens} > context {context_length}", param=param)
        self.prompt_tokens, self.max_tokens, self.context_length = prompt_tokens, max_tokens, context_length


class EngineOverloaded(GuardError, RuntimeError):
    """The engine's waiting queue is full (HTTP 429 with Retry-After)."""


class ServiceUnavailable(GuardError, RuntimeError):
    """A check, the engine or the audit database failed: fail closed with a 503."""
