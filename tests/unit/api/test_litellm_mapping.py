"""How a LiteLLM call is read: each text's role from LiteLLM's messages, and its caller's policy and tenant."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.api.litellm import roles_of
from guard.api.litellm_callers import CallerMap, CallerMapError, Mapped
from guard.checks.segmenter import finished_length

pytestmark = pytest.mark.unit


def test_roles_follow_litellms_extraction_of_texts() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "content": "result"},
        {"role": "developer", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": "c"}]},
    ]
    assert roles_of(["Be brief.", "a", "result", "b", "c"], messages) == [
        "system", "user", "user", "system", "system",
    ]  # fmt: skip
    # Texts that do not line up with the messages are all judged as the caller's own.
    assert roles_of(["Be brief."], messages) is None
    assert roles_of(["x"], None) is None


def test_first_matching_rule_wins_else_the_param_else_the_key(tmp_path: Path) -> None:
    rules = tmp_path / "callers.yaml"
    rules.write_text(
        "callers:\n"
        "  - match: {team_alias: support, param.lane: bulk}\n    policy: default\n"
        "  - match: {team_alias: support}\n    policy: strict\n    tenant: support\n"
    )
    callers = CallerMap.load(rules)
    support = {"user_api_key_team_alias": "support", "user_api_key_alias": "app"}
    assert callers.resolve(support, {"lane": "bulk"}) == Mapped(policy="default")
    assert callers.resolve(support, {}) == Mapped(policy="strict", tenant="support")
    assert callers.resolve({"user_api_key_team_alias": "sales"}, {"policy": "strict"}) == Mapped(policy="strict")
    assert callers.resolve({}, {}) == Mapped()
    assert CallerMap.load(None).resolve(support, {}) == Mapped()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("callers:\n  - match: {team: x}\n", r"unknown field\(s\) team"),
        ("callers:\n  - when: {team_alias: x}\n", "when"),
        ("callers: [", ""),
    ],
)
def test_a_file_that_cannot_be_used_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    rules = tmp_path / "callers.yaml"
    rules.write_text(text)
    with pytest.raises(CallerMapError, match=problem):
        CallerMap.load(rules)


def test_a_stream_may_release_up_to_its_last_sentence_end() -> None:
    assert finished_length("Hello team. Write to maria@exa") == len("Hello team. ")
    assert finished_length("No sentence has ended") == 0
    assert finished_length("First.\nSecond line") == len("First.\n")
