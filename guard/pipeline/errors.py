"""How a request can be refused or fail in the pipeline; the API maps each to its HTTP status.

Every error derives from :class:`guard.errors.GuardError` and keeps its standard base::

    GuardError
    ├── PolicyNotFound (LookupError)         404: the request names a policy that is not loaded
    ├── InputTooLarge (ValueError)           413: over the policy's limits.max_input_chars
    ├── InvalidParameter (ValueError)        422: a parameter out of the range this gateway serves
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


class InputTooLarge(GuardError, ValueError):
    """The request's messages exceed the policy's ``limits.max_input_chars``."""


class InvalidParameter(GuardError, ValueError):
    """A request parameter is out of the range this gateway serves."""


class ContextLengthExceeded(GuardError, ValueError):
    """Prompt tokens plus max_tokens exceed the model's context (HTTP 400)."""


class EngineOverloaded(GuardError, RuntimeError):
    """The engine's waiting queue is full (HTTP 429 with Retry-After)."""


class ServiceUnavailable(GuardError, RuntimeError):
    """A check, the engine or the audit database failed: fail closed with a 503."""
