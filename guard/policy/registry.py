"""All loaded policies by name; a new set replaces the old one whole or not at all."""

from __future__ import annotations

from pathlib import Path

from guard.policy.loader import LoadedPolicy, PolicyError, PolicySource, read_source, resolve_all

__all__ = ["PolicyRegistry", "load_directory"]


def _clash(source: PolicySource, other: PolicySource) -> PolicyError:
    """Two files of one directory claim the same policy name: say which, and why that cannot stand."""
    name, version = source.name, source.version
    if version is not None and version == other.version:
        if source.raw == other.raw:
            reason = f"policy {name!r} version {version!r} is a copy of {other.path}"
        else:
            reason = (
                f"policy {name!r} version {version!r} has different content in {source.path} and {other.path}: "
                "the same name and version must mean the same policy (bump the version)"
            )
    else:
        reason = f"policy name {name!r} is also used by {other.path} (one version of a policy in force at a time)"
    return source.error(source.node("$.version"), reason)


def load_directory(directory: Path) -> dict[str, LoadedPolicy]:
    """Load every ``*.yaml`` directly in ``directory`` (``extends`` resolved within it); any invalid file fails the
    whole set."""
    if not directory.is_dir():
        raise PolicyError(directory, "policy directory not found")
    sources = [read_source(path) for path in sorted(directory.glob("*.yaml"))]
    if not sources:
        raise PolicyError(directory, "no policy files (*.yaml) found")
    by_name: dict[str, PolicySource] = {}
    for source in sources:
        if source.name is not None and source.name in by_name:
            raise _clash(source, by_name[source.name])
        if source.name is not None:
            by_name[source.name] = source
    return {policy.name: policy for policy in resolve_all(sources, by_name)}


class PolicyRegistry:
    """The policies in force and which one applies by default."""

    def __init__(self, policies: dict[str, LoadedPolicy], default: str) -> None:
        if default not in policies:
            raise PolicyError(default, f"default policy {default!r} is not among the loaded policies")
        for loaded in policies.values():  # a shadow that cannot run is a broken set, not a silent no-op
            shadow = loaded.policy.shadow
            if shadow is not None and (shadow == loaded.name or shadow not in policies):
                reason = (
                    "is the policy itself (one that extends its active policy inherits its shadow: set `shadow: null`)"
                    if shadow == loaded.name
                    else "is not among the loaded policies"
                )
                raise PolicyError(loaded.source, f"shadow policy {shadow!r} {reason}")
        self._policies = dict(policies)
        self.default_name = default

    @classmethod
    def from_directory(cls, directory: Path, default: str) -> PolicyRegistry:
        return cls(load_directory(directory), default)

    def replace(self, policies: dict[str, LoadedPolicy]) -> None:
        """Put a new set in force with one assignment: a reader sees the old set or the new one, never a mix.

        The set is checked as a new registry would check it (same default) first; requests keep the
        :class:`LoadedPolicy` they started with, so in-flight work finishes on its version.
        """
        self._policies = PolicyRegistry(policies, self.default_name)._policies

    def get(self, name: str | None = None) -> LoadedPolicy:
        """The policy called ``name`` (the default when ``None``); ``KeyError`` when unknown."""
        return self._policies[name or self.default_name]

    def all(self) -> list[LoadedPolicy]:
        return list(self._policies.values())
