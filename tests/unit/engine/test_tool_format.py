"""The tool-use prompt format: calls read back exactly as written, whatever their strings hold; the preamble does
not depend on a client's key order."""

from __future__ import annotations

import json

import pytest

from guard.engine.tool_format import FunctionSpec, format_call, format_calls, parse_calls, tools_preamble

pytestmark = pytest.mark.unit


def test_calls_round_trip_even_with_the_marker_inside_a_string() -> None:
    arguments = json.dumps({"note": "a </tool_call> inside", "n": [1, {"x": "<tool_call>"}]})
    text = format_calls([("f", arguments), ("g", "{}")])
    calls = parse_calls(text)
    assert calls is not None
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("f", json.loads(arguments)), ("g", {})]


@pytest.mark.parametrize(
    "text",
    [
        "Hello <tool_call>",
        format_call("f", "{}") + " and some text",
        "<tool_call>{not json}</tool_call>",
        '<tool_call>{"arguments": {}}</tool_call>',
        '<tool_call>{"name": "f", "arguments": {}}',
        "",
    ],
)
def test_anything_but_calls_is_not_calls(text: str) -> None:
    assert parse_calls(text) is None


def test_history_calls_are_written_in_the_grammar_spacing() -> None:
    assert (
        format_call("f", '{"a":1,"b":[1,2]}')
        == '<tool_call>{"name": "f", "arguments": {"a": 1, "b": [1, 2]}}</tool_call>'
    )
    assert format_call("f", "not json") == '<tool_call>{"name": "f", "arguments": not json}</tool_call>'


def test_the_preamble_does_not_depend_on_key_order() -> None:
    one = FunctionSpec("f", "d", {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]})
    two = FunctionSpec("f", "d", {"required": ["a"], "properties": {"a": {"type": "string"}}, "type": "object"})
    assert tools_preamble([one]) == tools_preamble([two])
