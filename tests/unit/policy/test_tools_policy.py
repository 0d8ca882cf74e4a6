"""The policy's ``tools:`` section: function globs, the argument checks' default, schema errors; and what a request
is offered under it (:func:`guard.pipeline.tools.offer`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.engine.tool_format import FunctionSpec
from guard.pipeline.tools import Structure, ToolRequest, offer
from guard.policy import LoadedPolicy, PolicyError, load_policy_file

pytestmark = pytest.mark.unit

BASE = 'name: agent\nversion: "1"\nrefusal_message: No.\noutput:\n  secrets:\n    action: redact\n'


def _load(tmp_path: Path, text: str) -> LoadedPolicy:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy_file(path)


def test_globs_allow_and_deny(tmp_path: Path) -> None:
    policy = _load(tmp_path, BASE + 'tools:\n  allowed: ["get_*", "search"]\n  denied: ["get_secret*"]\n')
    rules = policy.policy.tools
    assert [rules.permits(n) for n in ("get_weather", "search", "get_secret_key", "delete_all", "searches")] == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_arguments_default_to_the_output_section(tmp_path: Path) -> None:
    policy = _load(tmp_path, BASE).policy
    assert policy.tools.argument_checks(policy.output).secrets == policy.output.secrets
    own = _load(tmp_path, BASE + "tools:\n  arguments:\n    secrets:\n      action: block\n").policy
    assert own.tools.argument_checks(own.output).secrets.action == "block"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "section",
    [
        'tools:\n  denied: ["a b"]\n',
        'tools:\n  allowed: "*"\n',
        "tools:\n  arguments:\n    toxicity: {thresholds: {toxicity: 0.5}}\n",
        "tools:\n  unknown: 1\n",
    ],
)
def test_invalid_tools_sections_are_refused(tmp_path: Path, section: str) -> None:
    with pytest.raises(PolicyError):
        _load(tmp_path, BASE + section)


def _tools(*names: str, choice: str = "auto") -> Structure:
    return Structure(tools=ToolRequest(tuple(FunctionSpec(n) for n in names), choice))


def test_denied_functions_are_not_offered_and_a_named_one_blocks(tmp_path: Path) -> None:
    policy = _load(tmp_path, BASE + 'tools:\n  denied: ["delete_*"]\n')
    offered = offer(policy, _tools("get_weather", "delete_user"))
    assert [f.name for f in offered.functions] == ["get_weather"]
    assert offered.grammar is not None
    assert "delete_user" not in offered.grammar
    assert [(f.check, f.type, f.action) for f in offered.findings] == [("tools", "DENIED_FUNCTION", "flag")]
    blocked = offer(policy, _tools("get_weather", "delete_user", choice="delete_user"))
    assert blocked.grammar is None
    assert "block" in [f.action for f in blocked.findings]
    assert "block" in [f.action for f in offer(policy, _tools("delete_user", choice="required")).findings]
    assert offer(policy, _tools("get_weather", choice="none")).grammar is None
