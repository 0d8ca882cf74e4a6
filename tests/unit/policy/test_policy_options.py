"""Policy-level options: ``allow_all`` (a policy that checks nothing must say so) and ``audit``."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.policy import PolicyError, load_policy_file
from guard.policy.schema import AuditOptions, Policy

pytestmark = pytest.mark.unit

NOTHING = 'name: open\nversion: "1"\nrefusal_message: No.\n'


def _load(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy_file(path).policy


@pytest.mark.parametrize(
    "text",
    [
        NOTHING,
        NOTHING + "input:\n  injection:\n    enabled: false\n",
        NOTHING + "output:\n  toxicity:\n    enabled: false\n    thresholds: {toxicity: 0.5}\n",
    ],
)
def test_a_policy_that_checks_nothing_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(PolicyError, match="this policy checks nothing; set allow_all: true if that is intended"):
        _load(tmp_path, text)


def test_allow_all_says_it_is_intended(tmp_path: Path) -> None:
    policy = _load(tmp_path, NOTHING + "allow_all: true\n")
    assert policy.allow_all
    assert policy.enabled_checks() == []


def test_one_enabled_check_is_enough(tmp_path: Path) -> None:
    policy = _load(tmp_path, NOTHING + "output:\n  toxicity:\n    thresholds: {toxicity: 0.5}\n")
    assert policy.enabled_checks() == ["output.toxicity"]


def test_audit_options_default_to_storing_everything(tmp_path: Path) -> None:
    base = NOTHING + "allow_all: true\n"
    assert _load(tmp_path, base).audit == AuditOptions(store_text=True, store_scores=True)
    policy = _load(tmp_path, base + "audit:\n  store_text: false\n")
    assert policy.audit == AuditOptions(store_text=False, store_scores=True)


def test_audit_options_are_strict(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="unknown field `store_raw`") as caught:
        _load(tmp_path, NOTHING + "allow_all: true\naudit:\n  store_raw: true\n")
    assert caught.value.line == 6
    with pytest.raises(PolicyError, match="Expected `bool`, got `str`"):
        _load(tmp_path, NOTHING + "allow_all: true\naudit:\n  store_text: 'no'\n")
