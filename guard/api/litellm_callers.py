"""Which guard policy and tenant a LiteLLM call runs under: rules over what LiteLLM says about its caller.

LiteLLM's generic guardrail request carries the caller's virtual-key facts (``request_data.user_api_key_*``) and the
guardrail's ``additional_provider_specific_params`` (its config, merged with the request's dynamic guardrail
params). ``GUARD_LITELLM_CALLERS`` names a YAML file of rules, first match wins::

    callers:
      - match: {team_alias: support}        # every named field must equal the value
        policy: strict
        tenant: support
      - match: {alias: batch-jobs, param.lane: bulk}
        policy: default

A field is one of :data:`CALLER_FIELDS` (LiteLLM's ``user_api_key_<field>``) or ``param.<name>`` (a guardrail
param). Without a matching rule, the guardrail's ``policy`` param, else the guard key's own policy, is run. Either
way the guard key LiteLLM calls with must be allowed the policy (else 403): a rule or a param can choose among the
key's policies, never a weaker one. A rule's tenant is used when the guard key has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from guard.errors import GuardError

__all__ = ["CALLER_FIELDS", "CallerMap", "CallerMapError", "Mapped"]

CALLER_FIELDS = frozenset({"hash", "alias", "user_id", "user_email", "team_id", "team_alias", "end_user_id", "org_id"})
"""What a rule may match on: LiteLLM's ``user_api_key_<field>`` request data (its virtual key's hash and alias, its
user, team, end user and organisation)."""


class CallerMapError(GuardError, ValueError):
    """The callers file cannot be used; the message names the file and what is wrong (never a matched value)."""


class _Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    match: dict[str, str] = msgspec.field(default_factory=dict)
    policy: str | None = None
    tenant: str | None = None


class _File(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    callers: list[_Rule] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Mapped:
    """A call's requested policy (``None``: the key's own) and tenant (``None``: the key's own)."""

    policy: str | None = None
    tenant: str | None = None


def _facts(request_data: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, str]:
    """What a rule can match: the ``user_api_key_*`` fields without the prefix, and ``param.<name>``."""
    facts = {
        name.removeprefix("user_api_key_"): str(value)
        for name, value in request_data.items()
        if name.startswith("user_api_key_") and value is not None
    }
    facts.update({f"param.{name}": str(value) for name, value in params.items() if isinstance(value, str | int)})
    return facts


@dataclass(frozen=True, slots=True)
class CallerMap:
    """The rules of a callers file (none: every call runs its ``policy`` param or the key's policy)."""

    rules: tuple[_Rule, ...] = ()

    @classmethod
    def load(cls, path: Path | None) -> CallerMap:
        """The rules in ``path`` (``None``: no rules). Raises :class:`CallerMapError` on any problem: a gateway
        must not start with a mapping it half understood."""
        if path is None:
            return cls()
        try:
            parsed = msgspec.yaml.decode(path.read_bytes(), type=_File)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise CallerMapError(f"{path}: {exc}") from None
        for index, rule in enumerate(parsed.callers):
            unknown = sorted(f for f in rule.match if f not in CALLER_FIELDS and not f.startswith("param."))
            if unknown:
                raise CallerMapError(f"{path}: callers[{index}].match: unknown field(s) {', '.join(unknown)}")
        return cls(tuple(parsed.callers))

    def resolve(self, request_data: Mapping[str, Any], params: Mapping[str, Any]) -> Mapped:
        """The first rule all of whose fields match; else the ``policy`` param; else the key's own."""
        facts = _facts(request_data, params)
        for rule in self.rules:
            if all(facts.get(name) == value for name, value in rule.match.items()):
                return Mapped(policy=rule.policy, tenant=rule.tenant)
        policy = params.get("policy")
        return Mapped(policy=policy if isinstance(policy, str) else None)
