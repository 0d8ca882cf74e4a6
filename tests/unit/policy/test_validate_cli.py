"""Must-show 1, validate side: each file of tests/data/bad_policies/ fails ``guard policy validate`` with exit 2 and
``file:line:column: reason``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli.policy import policy
from guard.policy.loader import MAX_ALIAS_NODES
from tests.conftest import POLICIES, ROOT

pytestmark = pytest.mark.unit

BAD = ROOT / "tests" / "data" / "bad_policies"


def _validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(policy, ["validate", str(path)])
    return result.exit_code, " ".join(result.output.split())  # rich may wrap a long message


@pytest.mark.parametrize(
    ("fixture", "line", "column", "reason"),
    [
        (
            "syntax_error.yaml",
            10,
            1,
            "expected ',' or ']', but got '<stream end>' (while parsing a flow sequence at line 9, column 22)",
        ),
        ("threshold_too_high.yaml", 7, 22, "Expected `float` <= 1.0 - at `$.input.pii.score_threshold`"),
        ("threshold_string.yaml", 7, 22, "Expected `float`, got `str` - at `$.input.pii.score_threshold`"),
        ("entity_typo.yaml", 9, 7, "Invalid enum value 'EMIAL_ADDRESS'"),
        ("unknown_check.yaml", 10, 3, "unknown field `sentiment` - at `$.input`"),
        ("duplicate_key.yaml", 5, 1, "duplicate key 'version'"),
        ("python_tag.yaml", 10, 14, "could not determine a constructor for the tag"),
        ("alias_bomb.yaml", 18, 45, f"aliases expand to more than {MAX_ALIAS_NODES} nodes"),
    ],
)
def test_each_bad_fixture_fails_with_file_line_column_and_reason(
    fixture: str, line: int, column: int, reason: str
) -> None:
    code, output = _validate(BAD / fixture)
    assert code == 2
    assert f"invalid {BAD / fixture}:{line}:{column}: " in output
    assert reason in output


def test_empty_file_fails_without_a_position() -> None:
    code, output = _validate(BAD / "empty.yaml")
    assert (code, output) == (2, f"invalid {BAD / 'empty.yaml'}: the file is empty")


def test_same_name_and_version_with_other_content_names_both_files() -> None:
    directory = BAD / "same_version_other_content"
    code, output = _validate(directory)
    assert code == 2
    assert f"invalid {directory / 'b.yaml'}:3:10: policy 'same-version' version '1' has different content" in output
    assert str(directory / "a.yaml") in output


def test_every_fixture_is_otherwise_valid(tmp_path: Path) -> None:
    """Undo each fixture's one fault and it loads: it fails for exactly its reason."""
    fixes = {
        "syntax_error.yaml": ("[redact", "redact"),
        "threshold_too_high.yaml": ("1.5", "0.5"),
        "threshold_string.yaml": ('"high"', "0.5"),
        "entity_typo.yaml": ("EMIAL", "EMAIL"),
        "unknown_check.yaml": ("  sentiment:\n    enabled: true\n", ""),
        "duplicate_key.yaml": ('version: "2"\n', ""),
        "python_tag.yaml": ('!!python/object/apply:os.system ["true"]', "fine"),
        "alias_bomb.yaml": (re.compile(r"  prohibited_use:.*", re.S), ""),
    }
    for name, (fault, fix) in fixes.items():
        text = (BAD / name).read_text(encoding="utf-8")
        fixed = fault.sub(fix, text) if isinstance(fault, re.Pattern) else text.replace(fault, fix)
        assert fixed != text, name
        (tmp_path / name).write_text(fixed, encoding="utf-8")
        assert _validate(tmp_path / name)[0] == 0, name
        (tmp_path / name).unlink()
    same = BAD / "same_version_other_content"
    for name in ("a.yaml", "b.yaml"):
        assert _validate(same / name)[0] == 0


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("name: loop\nversion: '1'\nrefusal_message: No.\ndescription: &x [*x]\n", encoding="utf-8")
    code, output = _validate(path)
    assert code == 2
    assert f"{path}:4:18: recursive alias *x" in output


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "shared.yaml"
    path.write_text(
        "name: shared\nversion: '1'\nrefusal_message: No.\n"
        "input:\n  pii:\n    entities: &pii {EMAIL_ADDRESS: redact, PERSON: mask}\n"
        "output:\n  pii:\n    entities: *pii\n",
        encoding="utf-8",
    )
    assert _validate(path)[0] == 0


def test_shipped_policies_validate() -> None:
    code, output = _validate(POLICIES)
    assert code == 0
    assert "ok " in output
