"""All loaded policies by name; a new set replaces the old one whole or not at all."""

from __future__ import annotations

from pathlib import Path

from guard.policy.loader import LoadedPolicy, PolicyError, load_policy_file

__all__ = ["PolicyRegistry", "load_directory"]


def load_directory(directory: Path) -> dict[str, LoadedPolicy]:
    """Load every ``*.yaml`` directly in ``directory``; any invalid file fails the whole set."""
    if not directory.is_dir():
        raise PolicyError(directory, "policy directory not found")
    loaded: dict[str, LoadedPolicy] = {}
    for path in sorted(directory.glob("*.yaml")):
        policy = load_policy_file(path)
        if policy.name in loaded:
            raise PolicyError(path, f"policy name {policy.name!r} is also used by {loaded[policy.name].source}")
        loaded[policy.name] = policy
    if not loaded:
        raise PolicyError(directory, "no policy files (*.yaml) found")
    return loaded


class PolicyRegistry:
    """The policies in force and which one applies by default."""

    def __init__(self, policies: dict[str, LoadedPolicy], default: str) -> None:
        if default not in policies:
            raise PolicyError(default, f"default policy {default!r} is not among the loaded policies")
        self._policies = dict(policies)
        self.default_name = default

    @classmethod
    def from_directory(cls, directory: Path, default: str) -> PolicyRegistry:
        return cls(load_directory(directory), default)

    def get(self, name: str | None = None) -> LoadedPolicy:
        """The policy called ``name`` (the default when ``None``); ``KeyError`` when unknown."""
        return self._policies[name or self.default_name]

    def all(self) -> list[LoadedPolicy]:
        return list(self._policies.values())
