"""``guard policy schema|show|diff``: what a policy author reads before a change goes live.

``schema`` publishes the JSON Schema editors validate YAML against as it is typed; ``show`` prints a policy as it
applies (``extends`` resolved) with its stamp; ``diff`` compares two policies value by value, defaults filled in, so a
reformatted file or a default spelt out shows no difference and a changed action shows exactly one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import msgspec
import yaml

from guard.cli.common import fail, settings
from guard.policy import LoadedPolicy, Policy, PolicyError, load_policy_file
from guard.policy.registry import load_directory

__all__ = ["policy_diff", "policy_json_schema", "policy_schema", "policy_show", "semantic_diff"]

_MISSING = object()


def policy_json_schema() -> dict[str, Any]:
    """msgspec's JSON Schema of :class:`Policy`, plus what it leaves out: the allowed keys of ``Literal``-keyed
    mappings (entities, categories, labels), which msgspec writes as free-form objects."""
    schema = msgspec.json.schema(Policy)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "guard policy"
    definitions = schema["$defs"]
    seen: set[str] = set()

    def visit(info: msgspec.inspect.Type) -> None:
        if isinstance(info, msgspec.inspect.StructType):
            name = info.cls.__name__
            if name in seen:
                return
            seen.add(name)
            for field in info.fields:
                kind = field.type
                keys = kind.key_type if isinstance(kind, msgspec.inspect.DictType) else None
                if isinstance(keys, msgspec.inspect.LiteralType):
                    prop = definitions[name]["properties"][field.encode_name]
                    prop["propertyNames"] = {"enum": sorted(map(str, keys.values))}
                visit(kind)
        elif isinstance(info, msgspec.inspect.UnionType):
            for member in info.types:
                visit(member)
        elif isinstance(info, msgspec.inspect.DictType):
            visit(info.value_type)
        elif isinstance(info, msgspec.inspect.ListType):
            visit(info.item_type)
        elif isinstance(info, msgspec.inspect.Metadata):
            visit(info.type)

    visit(msgspec.inspect.type_info(Policy))
    return schema


@click.command("schema")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout.")
def policy_schema(output: Path | None) -> None:
    """Print the JSON Schema of a policy file (for editors: yaml-language-server, VS Code, JetBrains)."""
    text = json.dumps(policy_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


def _load(reference: str, directory: Path) -> LoadedPolicy:
    """A policy file, or else the policy of that name in ``directory``."""
    path = Path(reference)
    if path.is_file():
        return load_policy_file(path)
    policies = load_directory(directory)
    if reference not in policies:
        fail(f"{reference!r} is neither a file nor a policy in {directory} ({', '.join(sorted(policies))})")
    return policies[reference]


_directory_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where policy names are looked up (default GUARD_POLICY_DIR).",
)


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


@click.command("show")
@click.argument("reference", metavar="NAME_OR_FILE")
@_directory_option
@click.option("--defaults", is_flag=True, help="Print every setting, defaults filled in, instead of the YAML.")
def policy_show(reference: str, directory: Path | None, defaults: bool) -> None:
    """Print a policy as it applies (extends resolved) with its stamp: name, version, sha256."""
    try:
        loaded = _load(reference, directory or settings().policy.directory)
    except PolicyError as exc:
        fail(f"invalid {exc}")
    click.echo(f"# {loaded.name} {loaded.version} sha256={loaded.sha256} ({loaded.source})")
    click.echo(_dump(msgspec.to_builtins(loaded.policy)) if defaults else loaded.text.rstrip("\n"))


def _leaves(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted.path, value)`` for every non-mapping value; a mapping's keys become path segments."""
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, data


def _show(value: Any) -> str:
    """A value for one diff line: simple words bare (``redact``), anything else as JSON."""
    if isinstance(value, str) and re.fullmatch(r"[\w.-]+", value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _expanded(path: str, value: Any, other: dict[str, Any]) -> bool:
    """An unset section (``null``) on one side that the other side configures: its own lines say it all."""
    return value is None and any(key.startswith(f"{path}.") for key in other)


def semantic_diff(old: Policy, new: Policy) -> list[str]:
    """Lines ``path: old → new`` (``+ path: value`` added, ``- path: value`` removed) between two policies, compared
    with every default filled in; a list of plain values reports the items added and removed."""
    before = dict(_leaves(msgspec.to_builtins(old)))
    after = dict(_leaves(msgspec.to_builtins(new)))
    lines: list[str] = []
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path, _MISSING), after.get(path, _MISSING)
        if a == b or _expanded(path, a, after) or _expanded(path, b, before):
            continue
        if a is _MISSING:
            lines.append(f"+ {path}: {_show(b)}")
        elif b is _MISSING:
            lines.append(f"- {path}: {_show(a)}")
        elif isinstance(a, list) and isinstance(b, list) and all(isinstance(x, str | int | float) for x in a + b):
            lines += [f"- {path}[]: {_show(x)}" for x in a if x not in b]
            lines += [f"+ {path}[]: {_show(x)}" for x in b if x not in a]
            if set(map(_show, a)) == set(map(_show, b)):  # same items, other order (first match wins for rules)
                lines.append(f"~ {path}: order {_show(a)} → {_show(b)}")
        else:
            lines.append(f"~ {path}: {_show(a)} → {_show(b)}")
    return lines


@click.command("diff")
@click.argument("old", metavar="A")
@click.argument("new", metavar="B")
@_directory_option
def policy_diff(old: str, new: str, directory: Path | None) -> None:
    """Semantic diff of two policies (names or files): exit 0 when they apply the same, 1 when they differ."""
    where = directory or settings().policy.directory
    try:
        a, b = _load(old, where), _load(new, where)
    except PolicyError as exc:
        fail(f"invalid {exc}")
    click.echo(f"--- {a.name} {a.version} sha256={a.sha256} ({a.source})")
    click.echo(f"+++ {b.name} {b.version} sha256={b.sha256} ({b.source})")
    lines = semantic_diff(a.policy, b.policy)
    for line in lines:
        click.echo(line)
    raise SystemExit(1 if lines else 0)
