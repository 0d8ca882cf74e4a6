"""Load one policy file, failing closed: any problem is a :class:`PolicyError` naming file, line, column and reason.

YAML is parsed with a safe loader that also rejects duplicate keys (a silent override is how a rule gets lost),
then validated by msgspec; validation errors are mapped back to the line of the offending node.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from guard.policy.schema import Policy

__all__ = ["LoadedPolicy", "PolicyError", "load_policy_file", "parse_policy"]


class PolicyError(Exception):
    """A policy that cannot be used; ``str()`` reads ``file:line:column: reason`` (1-based)."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None, column: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    """A validated policy with the sha256 of the exact bytes it came from."""

    policy: Policy
    sha256: str
    source: str
    text: str

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def version(self) -> str:
        return self.policy.version


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader (no custom tags) that refuses duplicate mapping keys."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_PATH_TOKEN = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")


def _node_at(root: Node, path: str, unknown_field: str | None) -> Node:
    """The deepest YAML node on a msgspec error path like ``$.input.pii.entities['X']``."""
    node = root
    steps: list[str | int] = []
    for attr, index, key in _PATH_TOKEN.findall(path.removeprefix("$")):
        steps.append(int(index) if index else (attr or key))
    if unknown_field is not None:
        steps.append(unknown_field)
    for step in steps:
        if isinstance(node, MappingNode):
            match = next((k for k, _ in node.value if getattr(k, "value", None) == step), None)
            if match is None:
                break
            value = next(v for k, v in node.value if k is match)
            node = match if step == unknown_field else value
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
        else:
            break
    return node


def parse_policy(text: str, source: str) -> Policy:
    """Validate YAML text as a :class:`Policy`; raise :class:`PolicyError` with the line of the problem."""
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise PolicyError(source, "the file is empty")
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise PolicyError(source, reason, mark.line + 1 if mark else None, mark.column + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    try:
        return msgspec.convert(data, Policy, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        paths = re.findall(r"`(\$[^`]*)`", message)
        unknown = re.search(r"unknown field `([^`]*)`", message)
        node = _node_at(root, paths[-1] if paths else "$", unknown.group(1) if unknown else None)
        raise PolicyError(source, message, node.start_mark.line + 1, node.start_mark.column + 1) from None


def load_policy_file(path: Path) -> LoadedPolicy:
    """Read, hash and validate one policy file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(path, f"cannot read the file ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(path, "the file is not valid UTF-8") from None
    policy = parse_policy(text, str(path))
    return LoadedPolicy(policy=policy, sha256=hashlib.sha256(data).hexdigest(), source=str(path), text=text)
