"""The OpenAI error shape's ``param``: a field path, named only when it is plain, and the context-length wording."""

from __future__ import annotations

import pytest
from litestar.exceptions import ValidationException

from guard.api.errors import _validation_error, context_length_message, safe_param

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("max_tokens", "max_tokens"),
        ("messages[0].role", "messages.0.role"),
        ("messages[12].content[3].type", "messages.12.content.3.type"),
        ("logit_bias[...]", None),
        ("<script>", None),
        ("a" * 65, None),
    ],
)
def test_safe_param(path: str, param: str | None) -> None:
    assert safe_param(path) == param


def test_unknown_fields_are_named_only_when_plain() -> None:
    named = _validation_error(
        ValidationException(extra=[{"message": "Object contains unknown field `temperture`", "key": "data"}])
    )
    assert (named.param, named.code, named.detail) == (
        "temperture",
        "unknown_parameter",
        "Unknown parameter: 'temperture'.",
    )
    nested = _validation_error(
        ValidationException(
            extra=[{"message": "Object contains unknown field `x` - at `$.messages[0]`", "key": "messages[0]"}]
        )
    )
    assert nested.param == "messages.0.x"
    hostile = _validation_error(
        ValidationException(extra=[{"message": "Object contains unknown field `<b>'x'`", "key": "data"}])
    )
    assert hostile.param is None
    assert "<b>" not in hostile.detail


def test_values_are_never_echoed() -> None:
    error = _validation_error(
        ValidationException(
            extra=[{"message": "Invalid enum value 'secret-123' - at `$.messages[0].role`", "key": "messages[0].role"}]
        )
    )
    assert error.param == "messages.0.role"
    assert "secret-123" not in error.detail


def test_context_length_wording_is_openais() -> None:
    message = context_length_message(1024, 1000, 256, "messages")
    assert message.startswith("This model's maximum context length is 1024 tokens. However, you requested 1256 tokens")
