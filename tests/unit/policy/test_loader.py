from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from guard.policy import PolicyError, PolicyRegistry, load_policy_file
from tests.conftest import POLICIES

pytestmark = pytest.mark.unit

VALID = """\
name: tiny
version: "2"
refusal_message: No.
input:
  pii:
    entities:
      EMAIL_ADDRESS: redact
"""


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_policies_load_with_their_sha256() -> None:
    registry = PolicyRegistry.from_directory(POLICIES, "default")
    default = registry.get()
    assert default.name == "default"
    assert default.sha256 == hashlib.sha256((POLICIES / "default.yaml").read_bytes()).hexdigest()
    assert registry.get("strict").policy.output.toxicity is not None


def test_valid_policy(tmp_path: Path) -> None:
    loaded = load_policy_file(_write(tmp_path, VALID))
    assert loaded.version == "2"
    assert loaded.policy.input.pii is not None
    assert loaded.policy.input.pii.entities == {"EMAIL_ADDRESS": "redact"}


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (VALID.replace("EMAIL_ADDRESS", "EMAIL_ADRESS"), 7, "Invalid enum value"),
        (VALID + "colour: blue\n", 8, "unknown field `colour`"),
        (VALID.replace("redact", "obliterate"), 7, "Invalid enum value"),
        (VALID.replace('version: "2"\n', 'version: "2"\nname: again\n'), 3, "duplicate key 'name'"),
        (VALID.replace('"2"', "2"), 2, "Expected `str`, got `int`"),
        (VALID + "output:\n  toxicity:\n    thresholds: {insult: 1.5}\n", 10, "Expected `float` <= 1.0"),
        (VALID.replace("refusal_message: No.\n", ""), 1, "missing required field `refusal_message`"),
        ("name: [unclosed\n", 2, "expected ',' or ']'"),
        (
            VALID + "  prohibited_use:\n    categories:\n      hate:\n        patterns: ['(x']\n",
            10,
            "invalid regular expression",
        ),
    ],
)
def test_invalid_policy_names_file_line_and_reason(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    error = caught.value
    assert error.path == str(path)
    assert reason in error.reason
    assert error.line == line
    assert str(error).startswith(f"{path}:{line}:")


def test_custom_yaml_tags_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="could not determine a constructor"):
        load_policy_file(_write(tmp_path, "!!python/object/apply:os.system ['true']\n"))


def test_two_files_with_one_name_fail_the_whole_set(tmp_path: Path) -> None:
    _write(tmp_path, VALID, "a.yaml")
    _write(tmp_path, VALID, "b.yaml")
    with pytest.raises(PolicyError, match="is a copy of"):
        PolicyRegistry.from_directory(tmp_path, "tiny")
    _write(tmp_path, VALID.replace('"2"', '"3"'), "b.yaml")
    with pytest.raises(PolicyError, match="also used by"):
        PolicyRegistry.from_directory(tmp_path, "tiny")


def test_default_policy_must_exist(tmp_path: Path) -> None:
    _write(tmp_path, VALID)
    with pytest.raises(PolicyError, match="default policy"):
        PolicyRegistry.from_directory(tmp_path, "default")
