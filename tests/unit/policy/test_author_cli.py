"""``guard policy schema|show|diff``."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

from guard.cli.policy import policy
from guard.cli.policy_author import policy_json_schema
from tests.conftest import POLICIES

pytestmark = pytest.mark.unit

BASE = """\
name: base
version: "1"
refusal_message: No.
input:
  pii:
    entities:
      PERSON: redact
      EMAIL_ADDRESS: redact
"""


def _run(*args: str) -> Result:
    return CliRunner().invoke(policy, list(args))


def test_schema_accepts_the_shipped_policies_and_rejects_typos(tmp_path: Path) -> None:
    out = tmp_path / "policy.schema.json"
    assert _run("schema", "--output", str(out)).exit_code == 0
    schema = json.loads(out.read_text(encoding="utf-8"))
    assert schema == json.loads(_run("schema").output) == policy_json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted(POLICIES.glob("*.yaml")):
        validator.validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    data = yaml.safe_load(BASE)
    data["input"]["pii"]["entities"]["EMIAL_ADDRESS"] = "redact"  # a key msgspec's own schema would let through
    with pytest.raises(jsonschema.ValidationError, match="EMIAL_ADDRESS"):
        validator.validate(data)
    with pytest.raises(jsonschema.ValidationError, match=r"1\.5"):
        validator.validate({**yaml.safe_load(BASE), "input": {"pii": {"score_threshold": 1.5, "entities": {}}}})


def test_show_prints_the_resolved_policy_with_its_stamp(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "child.yaml").write_text(
        'name: child\nversion: "2"\nextends: base\ninput:\n  pii:\n    entities:\n      PERSON: mask\n',
        encoding="utf-8",
    )
    result = _run("show", "child", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    first, rest = result.output.split("\n", 1)
    assert first.startswith("# child 2 sha256=")
    shown = yaml.safe_load(rest)
    assert shown["input"]["pii"]["entities"] == {"PERSON": "mask", "EMAIL_ADDRESS": "redact"}
    assert shown["refusal_message"] == "No."
    full = yaml.safe_load(_run("show", str(tmp_path / "child.yaml"), "--defaults").output)
    assert full["input"]["pii"]["score_threshold"] == 0.5
    assert full["audit"]["store_text"] is True


def test_show_unknown_name_exits_2(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    assert _run("show", "nope", "--dir", str(tmp_path)).exit_code == 2


def test_diff_reports_changed_added_and_removed_paths(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(BASE, encoding="utf-8")
    b.write_text(
        BASE.replace('"1"', '"2"')
        .replace("PERSON: redact", "PERSON: mask")
        .replace("      EMAIL_ADDRESS: redact\n", "")
        + "output:\n  toxicity:\n    thresholds: {toxicity: 0.8}\n",
        encoding="utf-8",
    )
    result = _run("diff", str(a), str(b))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "~ input.pii.entities.PERSON: redact → mask" in lines
    assert "- input.pii.entities.EMAIL_ADDRESS: redact" in lines
    assert "~ version: 1 → 2" in lines
    assert "+ output.toxicity.thresholds.toxicity: 0.8" in lines
    assert "+ output.toxicity.action: block" in lines  # a new section shows its defaults too
    assert not [line for line in lines if "null" in line and "non_english" not in line]


def test_diff_of_equal_policies_exits_0_even_when_the_files_differ(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(BASE, encoding="utf-8")
    b.write_text("# reformatted, a default spelt out\n" + BASE + "limits: {max_input_chars: 32000}\n", encoding="utf-8")
    result = _run("diff", str(a), str(b))
    assert result.exit_code == 0
    assert len(result.output.splitlines()) == 2  # the two headers only


def test_diff_of_pattern_lists_shows_items(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    rules = "  prohibited_use:\n    categories:\n      hate:\n        patterns: [{}]\n"
    a.write_text(BASE + rules.format("'x', 'y'"), encoding="utf-8")
    b.write_text(BASE + rules.format("'y', 'z'"), encoding="utf-8")
    lines = _run("diff", str(a), str(b)).output.splitlines()
    assert "- input.prohibited_use.categories.hate.patterns[]: x" in lines
    assert "+ input.prohibited_use.categories.hate.patterns[]: z" in lines


def test_diff_shipped_policies_by_name() -> None:
    result = _run("diff", "default", "strict", "--dir", str(POLICIES))
    assert result.exit_code == 1
    assert "~ name: default → strict" in result.output.splitlines()
