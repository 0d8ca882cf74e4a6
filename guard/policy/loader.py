"""Load policy files, failing closed: any problem is a :class:`PolicyError` naming file, line, column and reason.

YAML is parsed with a safe loader that also rejects duplicate keys (a silent override is how a rule gets lost) and
bounds alias expansion (a "billion laughs" file would otherwise exhaust memory in validation), then validated by
msgspec; validation errors are mapped back to the line of the offending node. A policy may ``extends:`` another
policy of its directory: the parent's resolved data is deep-merged under the child's before validation.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from guard.errors import GuardError
from guard.policy.schema import Policy

__all__ = [
    "MAX_ALIAS_NODES",
    "LoadedPolicy",
    "PolicyError",
    "PolicySource",
    "deep_merge",
    "load_policy_file",
    "parse_policy",
    "read_source",
    "resolve",
    "resolve_all",
]

MAX_ALIAS_NODES = 10_000
"""How many YAML nodes all aliases of one file may expand to together; a real policy reuses a pattern list or two."""


class PolicyError(GuardError):
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
    """A validated policy and its stamp.

    ``sha256`` is the sha256 of the file's bytes; for a policy that ``extends`` another it is
    sha256(own bytes + parent's sha256), so any change along the chain changes it. ``text`` is the file; for a policy
    that extends another, the resolved YAML after a comment naming every source and its sha256."""

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
    """SafeLoader (no custom tags) that refuses duplicate mapping keys, recursive aliases and alias bombs."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._alias_nodes = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor)
            if target is not None:
                if target.end_mark is None:  # the anchored node is still open: the alias is inside it
                    raise yaml.composer.ComposerError(None, None, f"recursive alias *{event.anchor}", event.start_mark)
                self._alias_nodes += self._expanded_size(target)
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise yaml.composer.ComposerError(
                        None,
                        None,
                        f"aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?)",
                        event.start_mark,
                    )
        return super().compose_node(parent, index)

    def _expanded_size(self, node: Node) -> int:
        """How many nodes ``node`` stands for once every alias in it is expanded (memoised per node)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        size = 1
        for child in children:
            size += self._expanded_size(child)
            if size > MAX_ALIAS_NODES:  # stop early: the caller refuses it anyway
                break
        self._sizes[id(node)] = size
        return size

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared objects out in full: a reader of resolved text should not have to follow anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_PATH_TOKEN = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")


def _node_at(root: Node, path: str, unknown_field: str | None) -> tuple[Node, bool]:
    """The deepest YAML node on a msgspec error path like ``$.input.pii.entities['X']``, and whether the whole path
    was found in this document (a merged policy's value may come from its parent's file)."""
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
                return node, False
            value = next(v for k, v in node.value if k is match)
            node = match if step == unknown_field else value
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
        else:
            return node, False
    return node, True


@dataclass(frozen=True, slots=True)
class PolicySource:
    """One policy file read and parsed, not yet validated."""

    path: Path
    raw: bytes
    text: str
    root: Node
    data: Any

    @property
    def name(self) -> str | None:
        value = self.data.get("name") if isinstance(self.data, dict) else None
        return value if isinstance(value, str) else None

    @property
    def version(self) -> str | None:
        value = self.data.get("version") if isinstance(self.data, dict) else None
        return value if isinstance(value, str) else None

    @property
    def extends(self) -> tuple[str, Node] | None:
        """The parent's name and the node naming it, when the file says ``extends:``."""
        if not isinstance(self.data, dict) or self.data.get("extends") is None:
            return None
        return str(self.data["extends"]), self.node("$.extends")

    def node(self, path: str) -> Node:
        """The node at a msgspec-style path such as ``$.version`` (the deepest one found)."""
        return _node_at(self.root, path, None)[0]

    def error(self, node: Node, reason: str) -> PolicyError:
        return PolicyError(self.path, reason, node.start_mark.line + 1, node.start_mark.column + 1)


def _parse_yaml(text: str, source: str) -> tuple[Node, Any]:
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise PolicyError(source, "the file is empty")
        return root, loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark is not None:  # e.g. where the unclosed "[" opened
            where = f"line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
            reason += f" ({exc.context} at {where})"
        raise PolicyError(source, reason, mark.line + 1 if mark else None, mark.column + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def read_source(path: Path) -> PolicySource:
    """Read and parse one file (no validation yet)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(path, f"cannot read the file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(path, "the file is not valid UTF-8") from None
    root, data = _parse_yaml(text, str(path))
    return PolicySource(path=path, raw=raw, text=text, root=root, data=data)


def _validate(data: Any, sources: list[PolicySource]) -> Policy:
    """Validate ``data`` as a :class:`Policy`; an error points into the first of ``sources`` (child first) that holds
    the offending path, else at the deepest node found in the child."""
    try:
        return msgspec.convert(data, Policy, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        paths = re.findall(r"`(\$[^`]*)`", message)
        unknown = re.search(r"unknown field `([^`]*)`", message)
        path = paths[-1] if paths else "$"
        field = unknown.group(1) if unknown else None
        for source in sources:
            node, found = _node_at(source.root, path, field)
            if found:
                raise source.error(node, message) from None
        raise sources[0].error(_node_at(sources[0].root, path, field)[0], message) from None


def parse_policy(text: str, source: str) -> Policy:
    """Validate YAML text of a policy that extends nothing; raise :class:`PolicyError` with the line of the problem."""
    root, data = _parse_yaml(text, source)
    parsed = PolicySource(path=Path(source), raw=text.encode(), text=text, root=root, data=data)
    if parsed.extends is not None:
        raise parsed.error(parsed.extends[1], "extends needs the policy's directory: load it from a file")
    return _validate(data, [parsed])


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` over ``base``: mappings merge key by key, recursively; anything else (lists too) replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = {key: copy.deepcopy(value) for key, value in base.items()}
        for key, value in override.items():
            merged[key] = deep_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


@dataclass(frozen=True, slots=True)
class _Resolved:
    data: Any
    sha256: str
    chain: list[PolicySource]
    """This file first, then its ancestors."""


def _resolve_data(
    source: PolicySource, by_name: dict[str, PolicySource], cache: dict[Path, _Resolved], visiting: list[Path]
) -> _Resolved:
    if source.path in cache:
        return cache[source.path]
    extends = source.extends
    if extends is None:
        resolved = _Resolved(source.data, hashlib.sha256(source.raw).hexdigest(), [source])
    else:
        parent_name, node = extends
        parent = by_name.get(parent_name)
        if parent is None:
            raise source.error(node, f"extends {parent_name!r}: no policy of that name in {source.path.parent}")
        chain = [*visiting, source.path]
        if parent.path in chain:
            cycle = " → ".join(p.name for p in [*chain[chain.index(parent.path) :], parent.path])
            raise source.error(node, f"extends {parent_name!r} makes a cycle ({cycle})")
        above = _resolve_data(parent, by_name, cache, chain)
        data = deep_merge(above.data, source.data)
        sha256 = hashlib.sha256(source.raw + above.sha256.encode("ascii")).hexdigest()
        resolved = _Resolved(data, sha256, [source, *above.chain])
    cache[source.path] = resolved
    return resolved


def _resolved_text(resolved: _Resolved) -> str:
    """The resolved YAML after a comment naming every file it came from and that file's own sha256."""
    header = ["# Resolved policy (extends applied); sources, child first:"]
    header += [f"#   {s.path} sha256={hashlib.sha256(s.raw).hexdigest()}" for s in resolved.chain]
    header.append(f"# Stamp (sha256 of own bytes + parent's stamp, along the chain): {resolved.sha256}")
    body = yaml.dump(resolved.data, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=120)
    return "\n".join(header) + "\n" + body


def resolve_all(sources: list[PolicySource], by_name: dict[str, PolicySource]) -> list[LoadedPolicy]:
    """:func:`resolve` each of ``sources``, merging a shared parent once."""
    cache: dict[Path, _Resolved] = {}
    return [resolve(source, by_name, cache) for source in sources]


def resolve(
    source: PolicySource, by_name: dict[str, PolicySource], cache: dict[Path, _Resolved] | None = None
) -> LoadedPolicy:
    """Validate ``source`` with its ``extends`` chain (parents looked up by name in ``by_name``) applied."""
    resolved = _resolve_data(source, by_name, {} if cache is None else cache, [])
    policy = _validate(resolved.data, resolved.chain)
    text = source.text if len(resolved.chain) == 1 else _resolved_text(resolved)
    return LoadedPolicy(policy=policy, sha256=resolved.sha256, source=str(source.path), text=text)


def _siblings_by_name(path: Path) -> dict[str, PolicySource]:
    """The other policies of ``path``'s directory that parse, by name (a broken sibling matters only if extended)."""
    found: dict[str, PolicySource] = {}
    for sibling in sorted(path.parent.glob("*.yaml")):
        if sibling.resolve() == path.resolve():
            continue
        try:
            parsed = read_source(sibling)
        except PolicyError:
            continue
        if parsed.name is not None:
            found.setdefault(parsed.name, parsed)
    return found


def load_policy_file(path: Path) -> LoadedPolicy:
    """Read, hash and validate one policy file; a parent it ``extends`` is looked up in the same directory."""
    source = read_source(path)
    by_name = _siblings_by_name(path) if source.extends is not None else {}
    return resolve(source, by_name)
