"""Issue 5, must show 3: ``guard policy test`` runs the shipped golden suites through the real checks (dev models) and
passes; a suite with one expectation flipped fails with exit 1; an empty, invalid or unknown-policy suite exits 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from guard.cli import main
from tests.conftest import POLICIES

pytestmark = pytest.mark.integration

SUITES = POLICIES / "tests"


def _guard_policy_test(guard_home: Path, *args: str) -> Result:
    env = {"GUARD_PROFILE": "dev", "GUARD_HOME": str(guard_home)}
    return CliRunner().invoke(main, ["policy", "test", *args, "--policy-dir", str(POLICIES)], env=env)


def _write_suite(path: Path, suite: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(suite, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _shipped(name: str) -> dict[str, Any]:
    suite: dict[str, Any] = yaml.safe_load((SUITES / f"{name}.yaml").read_text(encoding="utf-8"))
    return suite


def test_the_shipped_suites_pass(guard_home: Path) -> None:
    result = _guard_policy_test(guard_home)  # default: every suite of <policy dir>/tests
    assert result.exit_code == 0, result.output
    for name in ("default", "strict"):
        cases = len(_shipped(name)["cases"])
        assert f"tests/{name}.yaml (policy {name}): {cases}/{cases} passed" in result.output
    assert "FAIL" not in result.output


@pytest.mark.parametrize(
    ("case", "field", "flipped"),
    [
        ("weapons (deny rule and embedding)", "decision", "allow"),
        (
            "name and email are redacted",
            "redacted",
            "Please email Maria Garcia at <EMAIL_ADDRESS_1> about the invoice.",
        ),
        ("safe but scary wording is allowed", "findings", ["dangerous_activities"]),
    ],
)
def test_a_broken_golden_case_fails(guard_home: Path, tmp_path: Path, case: str, field: str, flipped: Any) -> None:
    suite = _shipped("default")
    (target,) = [c for c in suite["cases"] if c["name"] == case]
    target["expect"][field] = flipped
    result = _guard_policy_test(guard_home, str(_write_suite(tmp_path / "default.yaml", suite)))
    assert result.exit_code == 1, result.output
    cases = len(suite["cases"])
    assert f"(policy default): {cases - 1}/{cases} passed" in result.output
    assert "1 golden case(s) failed" in result.stderr


def test_an_empty_suite_exits_2(guard_home: Path, tmp_path: Path) -> None:
    result = _guard_policy_test(
        guard_home, str(_write_suite(tmp_path / "empty.yaml", {"policy": "default", "cases": []}))
    )
    assert result.exit_code == 2
    assert "no cases" in result.stderr


def test_a_suite_naming_an_unknown_policy_exits_2(guard_home: Path, tmp_path: Path) -> None:
    suite = _shipped("default") | {"policy": "no-such-policy"}
    result = _guard_policy_test(guard_home, str(_write_suite(tmp_path / "unknown.yaml", suite)))
    assert result.exit_code == 2
    assert "unknown policy 'no-such-policy'" in result.stderr


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"expected": "allow"}, "unknown field"),  # a typo of `expect`
        ({"expect": {"decision": "deny"}}, "Invalid enum value 'deny'"),  # not a decision
        ({"messages": [{"role": "user", "content": "hi"}]}, "exactly one of `text` or `messages`"),
    ],
)
def test_an_invalid_case_exits_2(guard_home: Path, tmp_path: Path, change: dict[str, Any], reason: str) -> None:
    case = {"name": "bad", "stage": "input", "text": "hello", "expect": {"decision": "allow"}} | change
    result = _guard_policy_test(
        guard_home, str(_write_suite(tmp_path / "bad.yaml", {"policy": "default", "cases": [case]}))
    )
    assert result.exit_code == 2
    assert reason in result.stderr


def test_a_case_for_another_profile_is_skipped(guard_home: Path, tmp_path: Path) -> None:
    # Expects a block the dev checks cannot give: had it run under the dev profile, the suite would fail.
    case = {
        "name": "prod only",
        "stage": "input",
        "profile": "production",
        "text": "Hello.",
        "expect": {"decision": "block"},
    }
    suite = {"policy": "default", "cases": [case]}
    result = _guard_policy_test(guard_home, str(_write_suite(tmp_path / "prod.yaml", suite)))
    assert result.exit_code == 0, result.output
    assert "skipped: needs the production profile" in result.output
    assert "0/0 passed" in result.output
