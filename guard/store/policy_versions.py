"""Every policy version the service has loaded, stored with its exact YAML text.

A decision's stamp (policy name, version, sha256) resolves to one row here, so a reviewer can read the policy
that produced it (:func:`load_stored_policy`). A name + version is immutable: once stored with one sha256, the same
name and version with other content is refused (edit a policy, bump its version).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import yaml
from sqlalchemy import and_, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.errors import GuardError
from guard.policy import LoadedPolicy, Policy, PolicyError
from guard.policy.loader import parse_policy
from guard.store.models import PolicyVersionRow

__all__ = ["PolicyVersionConflict", "load_stored_policy", "policy_text", "record_policy_versions"]

_ROW = PolicyVersionRow
_PREFIX = 12


class PolicyVersionConflict(GuardError, ValueError):
    """A policy's name + version is already stored with different content."""

    def __init__(self, policy: LoadedPolicy, stored_sha256: str) -> None:
        self.policy = policy
        self.stored_sha256 = stored_sha256
        super().__init__(
            f"{policy.source}: policy {policy.name!r} version {policy.version!r} is already recorded with sha256 "
            f"{stored_sha256[:_PREFIX]}…, this file has sha256 {policy.sha256[:_PREFIX]}…: "
            "a published version cannot change, give the edited policy a new version"
        )


async def record_policy_versions(engine: AsyncEngine, policies: Iterable[LoadedPolicy]) -> list[LoadedPolicy]:
    """Store each policy's version unless already there; all or nothing. Returns the ones newly stored.

    Raises :class:`PolicyVersionConflict` (storing nothing) when a name + version is held with another sha256.
    """
    wanted = list(policies)
    if not wanted:
        return []
    try:
        return await _record(engine, wanted)
    except IntegrityError:
        # Another replica stored the same version between our read and our insert: read again.
        return await _record(engine, wanted)


async def _record(engine: AsyncEngine, wanted: list[LoadedPolicy]) -> list[LoadedPolicy]:
    same_version = or_(*(and_(_ROW.name == p.name, _ROW.version == p.version) for p in wanted))
    async with engine.begin() as connection:
        result = await connection.execute(select(_ROW.name, _ROW.version, _ROW.sha256).where(same_version))
        stored: dict[tuple[str, str], set[str]] = {}
        for name, version, sha256 in result:
            stored.setdefault((name, version), set()).add(sha256)
        for policy in wanted:
            other = sorted(stored.get((policy.name, policy.version), set()) - {policy.sha256})
            if other:
                raise PolicyVersionConflict(policy, other[0])
        new = [p for p in wanted if p.sha256 not in stored.get((p.name, p.version), set())]
        if new:
            now = datetime.now(UTC)
            await connection.execute(
                insert(_ROW),
                [
                    {"name": p.name, "version": p.version, "sha256": p.sha256, "text": p.text, "first_seen_at": now}
                    for p in new
                ],
            )
    return new


async def policy_text(engine: AsyncEngine, name: str, sha256: str) -> str | None:
    """The exact YAML text stored for policy ``name`` with stamp ``sha256``; ``None`` when unknown."""
    async with engine.connect() as connection:
        result = await connection.execute(select(_ROW.text).where(_ROW.name == name, _ROW.sha256 == sha256).limit(1))
        return result.scalar_one_or_none()


async def load_stored_policy(engine: AsyncEngine, name: str | None, sha256: str | None) -> Policy | None:
    """The policy version stamped on a record, parsed; ``None`` when unknown or unreadable."""
    if name is None or sha256 is None:
        return None
    text = await policy_text(engine, name, sha256)
    if text is None:
        return None
    try:
        data = yaml.safe_load(text)
        # The stored text is already resolved: ``extends`` is applied, so drop it before validating alone.
        if isinstance(data, dict):
            data.pop("extends", None)
        return parse_policy(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), f"{name}@{sha256[:12]}")
    except (PolicyError, yaml.YAMLError):
        return None
