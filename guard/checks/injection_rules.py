"""The injection check's weighted instruction-override rules: read from YAML beside the policies, scored here.

The rules are data (``policies/rules/injection.yaml``, shipped in the wheel as ``guard/_policies/rules/``; its header
documents the format); this module validates them when the checks load and scores a folded text with them. A file
that cannot be used raises :class:`guard.policy.PolicyError` naming it, so startup stops (fail closed) rather than
running with fewer rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from guard.policy import PolicyError

__all__ = ["OverrideRule", "OverrideRules", "OverrideScore", "default_rules_path", "load_rules"]

RULES_FILE = "injection.yaml"

_SEP = r"[\W_]+"
"""What a space in a pattern stands for: any run of separators."""
_ANY_WORDS = r"(?:[\W_]+\w+){0,3}?"
"""With the separators around it, what ``' … '`` stands for: up to three filler words."""
_FRAGMENT = re.compile(r"(?<!\\)\{([a-z][a-z0-9_]*)\}")
"""A ``{name}`` reference to a fragment (a regular expression's ``{2,3}`` has no letters)."""

_Name = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class _RuleSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One rule as written (see the file's header for each field)."""

    name: _Name
    weight: Annotated[float, Meta(gt=0, le=1)]
    pattern: Annotated[str, Meta(min_length=1)]
    anchors: list[Annotated[str, Meta(min_length=1)]] = []


class _RuleFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A rules file: named pattern fragments and the rules, in the order they are tried."""

    fragments: dict[_Name, Annotated[str, Meta(min_length=1)]] = {}
    rules: Annotated[list[_RuleSpec], Meta(min_length=1)]


@dataclass(frozen=True, slots=True)
class OverrideRule:
    """A compiled rule: a match adds ``weight`` to the text's combined score."""

    name: str
    weight: float
    pattern: re.Pattern[str]
    anchors: tuple[str, ...]
    """Literals at least one of which every match contains: a text with none skips the regular expression (an
    empty tuple: the expression always runs)."""


@dataclass(frozen=True, slots=True)
class OverrideScore:
    """A combined rule score with the span (in the folded text) and name of the strongest matching rule."""

    score: float
    start: int
    end: int
    rule: str


@dataclass(frozen=True, slots=True)
class OverrideRules:
    """The rules of one file, in file order."""

    rules: tuple[OverrideRule, ...]

    def score(self, folded: str) -> OverrideScore | None:
        """The combined instruction-override score of an already folded text: ``1 - Π(1 - weight)`` over the rules
        that match, with the span of the strongest rule's first match (None when no rule matches)."""
        miss = 1.0
        best: tuple[float, int, int, str] | None = None
        for rule in self.rules:
            # Checking a few substrings is ~50x cheaper than a regular expression that starts with an alternation,
            # and most texts contain none of a rule's anchors.
            if rule.anchors and not any(anchor in folded for anchor in rule.anchors):
                continue
            match = rule.pattern.search(folded)
            if match is None:
                continue
            miss *= 1.0 - rule.weight
            if best is None or rule.weight > best[0]:
                best = (rule.weight, match.start(), match.end(), rule.name)
        if best is None:
            return None
        return OverrideScore(round(1.0 - miss, 4), best[1], best[2], best[3])


def default_rules_path() -> Path:
    """policies/rules/injection.yaml in a source tree, or its copy inside the installed package (see pyproject.toml)."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_policies" / "rules", package.parent / "policies" / "rules"):
        if candidate.is_dir():
            return candidate / RULES_FILE
    raise FileNotFoundError("no rules directory (policies/rules) next to the guard package")


def load_rules(path: Path) -> OverrideRules:
    """The rules of ``path``, validated; a file that cannot be used is a :class:`PolicyError`."""
    try:
        parsed = msgspec.yaml.decode(path.read_bytes(), type=_RuleFile)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PolicyError(path, str(exc)) from None
    except OSError as exc:
        raise PolicyError(path, f"cannot read the rules ({exc.strerror or exc})") from None
    fragments: dict[str, str] = {}
    for name, fragment in parsed.fragments.items():
        fragments[name] = _joined(path, f"fragment {name!r}", fragment)
        if _FRAGMENT.search(fragments[name]):
            raise PolicyError(path, f"fragment {name!r}: a fragment cannot use another fragment")
    rules: list[OverrideRule] = []
    for spec in parsed.rules:
        if any(rule.name == spec.name for rule in rules):
            raise PolicyError(path, f"duplicate rule name {spec.name!r}")
        rules.append(_compile(path, spec, fragments))
    return OverrideRules(tuple(rules))


def _joined(path: Path, where: str, text: str) -> str:
    """A pattern or fragment written over several lines, joined without the line breaks."""
    lines = text.split("\n")
    if any(line != line.strip() for line in lines):
        raise PolicyError(path, f"{where}: a line starts or ends with whitespace (the lines are joined as they are)")
    return "".join(lines)


def _compile(path: Path, spec: _RuleSpec, fragments: dict[str, str]) -> OverrideRule:
    """The rule's pattern with its fragments substituted, separators and filler words expanded, compiled."""
    where = f"rule {spec.name!r}"
    pattern = _joined(path, where, spec.pattern)
    for name in _FRAGMENT.findall(pattern):
        if name not in fragments:
            raise PolicyError(path, f"{where}: unknown fragment {{{name}}}")
    pattern = _FRAGMENT.sub(lambda m: fragments[m.group(1)], pattern)
    expanded = pattern.replace(" … ", _ANY_WORDS + _SEP).replace(" ", _SEP)
    try:
        compiled = re.compile(expanded, re.MULTILINE)
    except re.error as exc:
        raise PolicyError(path, f"{where}: invalid regular expression ({exc.msg})") from None
    if compiled.search("") is not None:
        raise PolicyError(path, f"{where}: the pattern matches the empty text")
    for anchor in spec.anchors:
        if anchor != anchor.lower():
            raise PolicyError(path, f"{where}: anchor {anchor!r} is not lower case (texts are folded to lower case)")
    return OverrideRule(spec.name, spec.weight, compiled, tuple(spec.anchors))
