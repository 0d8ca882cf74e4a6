"""``extends``: deep merge under the child, validation of the result, the chained stamp and the resolved text."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from guard.policy import PolicyError, load_policy_file
from guard.policy.registry import load_directory

pytestmark = pytest.mark.unit

PARENT = """\
name: base
version: "1"
refusal_message: No.
input:
  pii:
    score_threshold: 0.4
    allow_list: [Acme]
    entities:
      PERSON: redact
      EMAIL_ADDRESS: redact
  injection:
    threshold: 0.5
"""

CHILD = """\
name: child
version: "7"
extends: base
input:
  pii:
    allow_list: [Globex]
    entities:
      PERSON: mask
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_child_keys_override_mappings_merge_and_lists_replace(tmp_path: Path) -> None:
    _write(tmp_path, "base.yaml", PARENT)
    child = load_policy_file(_write(tmp_path, "child.yaml", CHILD)).policy
    assert (child.name, child.version, child.extends, child.refusal_message) == ("child", "7", "base", "No.")
    pii = child.input.pii
    assert pii is not None
    assert pii.entities == {"PERSON": "mask", "EMAIL_ADDRESS": "redact"}  # merged key by key
    assert pii.score_threshold == 0.4  # inherited
    assert pii.allow_list == ["Globex"]  # a list replaces, never concatenates
    assert child.input.injection is not None


def test_stamp_chains_the_parent_and_changes_with_it(tmp_path: Path) -> None:
    parent = _write(tmp_path, "base.yaml", PARENT)
    child_path = _write(tmp_path, "child.yaml", CHILD)
    loaded = load_directory(tmp_path)
    parent_sha = hashlib.sha256(parent.read_bytes()).hexdigest()
    assert loaded["base"].sha256 == parent_sha
    assert loaded["child"].sha256 == hashlib.sha256(child_path.read_bytes() + parent_sha.encode()).hexdigest()
    _write(tmp_path, "base.yaml", PARENT.replace("0.4", "0.45"))
    assert load_directory(tmp_path)["child"].sha256 != loaded["child"].sha256  # the child's file did not change


def test_resolved_text_names_sources_and_reloads_to_the_same_policy(tmp_path: Path) -> None:
    parent = _write(tmp_path, "base.yaml", PARENT)
    child_path = _write(tmp_path, "child.yaml", CHILD)
    loaded = load_policy_file(child_path)
    assert f"{child_path} sha256={hashlib.sha256(child_path.read_bytes()).hexdigest()}" in loaded.text
    assert f"{parent} sha256={hashlib.sha256(parent.read_bytes()).hexdigest()}" in loaded.text
    assert loaded.sha256 in loaded.text
    # The stored text alone is the whole policy: drop `extends` and it loads to the same thing.
    (tmp_path / "elsewhere").mkdir()
    alone = _write(tmp_path / "elsewhere", "alone.yaml", loaded.text.replace("extends: base\n", ""))
    again = load_policy_file(alone).policy
    assert again.input == loaded.policy.input
    assert again.refusal_message == loaded.policy.refusal_message


def test_plain_file_text_is_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "base.yaml", PARENT)
    loaded = load_policy_file(path)
    assert loaded.text == PARENT
    assert loaded.sha256 == hashlib.sha256(PARENT.encode()).hexdigest()


def test_grandparent_chain(tmp_path: Path) -> None:
    _write(tmp_path, "base.yaml", PARENT)
    _write(tmp_path, "child.yaml", CHILD)
    _write(tmp_path, "grandchild.yaml", 'name: grandchild\nversion: "1"\nextends: child\nrefusal_message: Nope.\n')
    loaded = load_directory(tmp_path)["grandchild"]
    assert loaded.policy.refusal_message == "Nope."
    assert loaded.policy.input.pii is not None
    assert loaded.policy.input.pii.entities["PERSON"] == "mask"
    assert loaded.text.count("sha256=") == 3


def test_unknown_parent_is_an_error_at_the_extends_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "child.yaml", CHILD)
    with pytest.raises(PolicyError, match="extends 'base': no policy of that name") as caught:
        load_policy_file(path)
    assert (caught.value.line, caught.value.column) == (3, 10)


def test_cycle_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", PARENT.replace("name: base", "name: a\nextends: b"))
    _write(tmp_path, "b.yaml", PARENT.replace("name: base", "name: b\nextends: a"))
    with pytest.raises(PolicyError, match=r"makes a cycle \(a.yaml → b.yaml → a.yaml\)"):
        load_directory(tmp_path)
    _write(tmp_path, "b.yaml", PARENT.replace("name: base", "name: b\nextends: b"))
    with pytest.raises(PolicyError, match=r"makes a cycle \(b.yaml → b.yaml\)"):
        load_directory(tmp_path)


def test_merged_result_is_validated_and_errors_point_into_the_child(tmp_path: Path) -> None:
    _write(tmp_path, "base.yaml", PARENT)
    path = _write(tmp_path, "child.yaml", CHILD.replace("PERSON: mask", "PERSON: obliterate"))
    with pytest.raises(PolicyError, match="Invalid enum value 'obliterate'") as caught:
        load_policy_file(path)
    assert (caught.value.path, caught.value.line) == (str(path), 8)


def test_error_from_the_parent_points_into_the_parent(tmp_path: Path) -> None:
    """A sibling that is broken on its own fails the directory; alone, the child names the parent's line."""
    parent = _write(tmp_path, "base.yaml", PARENT.replace("threshold: 0.5", "threshold: 5"))
    with pytest.raises(PolicyError, match=r"<= 1\.0") as caught:
        load_policy_file(_write(tmp_path, "child.yaml", CHILD))
    assert (caught.value.path, caught.value.line) == (str(parent), 12)
