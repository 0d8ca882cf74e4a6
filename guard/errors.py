"""The root of guard's exceptions: every error guard raises on purpose derives from :class:`GuardError`.

Callers that only need "something guard refused or could not do" catch ``GuardError`` instead of a tuple; the
subclasses keep their standard bases too (``ValueError``, ``LookupError``, ``RuntimeError``) so code written
against those still works.
"""

from __future__ import annotations

__all__ = ["GuardError"]


class GuardError(Exception):
    """Base of every guard error; messages never hold raw input (they end up in logs and HTTP answers)."""
