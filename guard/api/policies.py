"""Policies in force and their history: ``GET /v1/policies``, ``GET /v1/policies/{name}``, ``POST /v1/policies/reload``.

A reload (the endpoint or SIGHUP) loads and validates the whole directory, checks that every layer can run with
the loaded models, stores the versions, and only then swaps the set in one assignment. Any failure changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.api.auth import require_scope
from guard.api.errors import ERROR_RESPONSES, error_response
from guard.checks.registry import CheckRegistry, PolicyCannotRun
from guard.errors import GuardError
from guard.policy import LoadedPolicy, PolicyError, PolicyRegistry
from guard.policy.registry import load_directory
from guard.store.policy_versions import PolicyVersionConflict, policy_text, record_policy_versions

logger = logging.getLogger(__name__)

YAML_MEDIA_TYPE = "text/yaml"


class PolicyInfo(msgspec.Struct):
    name: str
    version: str
    sha256: str
    default: bool
    description: str


class PolicyList(msgspec.Struct):
    default: str
    policies: list[PolicyInfo]


def policy_list(registry: PolicyRegistry) -> PolicyList:
    return PolicyList(
        default=registry.default_name,
        policies=[
            PolicyInfo(p.name, p.version, p.sha256, p.name == registry.default_name, p.policy.description)
            for p in sorted(registry.all(), key=lambda p: p.name)
        ],
    )


class PolicyReloadRefused(GuardError, RuntimeError):
    """The new policy set was not put in force; the message says why (``file:line:column: reason`` where known)."""


def _check_runnable(checks: CheckRegistry, policies: list[LoadedPolicy]) -> None:
    """Raise :class:`PolicyReloadRefused` unless every layer the policies name can run with the loaded models."""
    for loaded in policies:
        try:
            checks.validate(loaded)
        except PolicyCannotRun as exc:
            raise PolicyReloadRefused(
                f"{loaded.source}: policy {loaded.name!r} cannot run here: {exc.reason}"
            ) from None


class PolicyReloader:
    """Reloads the policy directory into ``registry``; one reload at a time."""

    def __init__(
        self, directory: Path, registry: PolicyRegistry, db_engine: AsyncEngine, checks: CheckRegistry
    ) -> None:
        self.directory = directory
        self.registry = registry
        self._db_engine = db_engine
        self._checks = checks
        self._lock = asyncio.Lock()

    async def reload(self) -> list[LoadedPolicy]:
        """Validate and put in force the directory's policies; raise :class:`PolicyReloadRefused` changing nothing."""
        async with self._lock:
            try:
                loaded = await asyncio.to_thread(load_directory, self.directory)
                candidate = PolicyRegistry(loaded, self.registry.default_name)  # default present, shadows resolvable
                await asyncio.to_thread(_check_runnable, self._checks, candidate.all())
                await record_policy_versions(self._db_engine, candidate.all())
            except (PolicyError, PolicyVersionConflict) as exc:
                raise PolicyReloadRefused(str(exc)) from None
            except SQLAlchemyError as exc:
                raise PolicyReloadRefused(f"the policy versions could not be stored ({type(exc).__name__})") from None
            self.registry.replace(loaded)
            return candidate.all()

    async def reload_logged(self, trigger: str) -> PolicyReloadRefused | None:
        """Reload and log the outcome (what asked, what is in force or why nothing changed); the refusal if any."""
        try:
            policies = await self.reload()
        except PolicyReloadRefused as exc:
            logger.error("policy reload (%s) refused, nothing changed: %s", trigger, exc)
            return exc
        stamps = ", ".join(f"{p.name} {p.version} sha256:{p.sha256[:12]}" for p in policies)
        logger.info("policy reload (%s): in force: %s", trigger, stamps)
        return None


class PoliciesController(Controller):
    path = "/policies"
    tags = ["policies"]
    guards = [require_scope("policy:admin", "audit:read")]  # reload also needs policy:admin

    @get("/", operation_id="listPolicies", responses=ERROR_RESPONSES)
    async def list_policies(self, state: State) -> PolicyList:
        """The policies in force: name, version, sha256 stamp, and which is the default."""
        return policy_list(state.policies)

    @get("/{name:str}", operation_id="getPolicy", media_type=YAML_MEDIA_TYPE, responses=ERROR_RESPONSES)
    async def get_policy(self, state: State, name: str, sha256: str | None = None) -> Response[bytes]:
        """The exact YAML behind a stamp (``?sha256=`` from an audit row), or of the version in force without it."""
        registry: PolicyRegistry = state.policies
        text: str | None
        if sha256 is None:
            loaded = next((p for p in registry.all() if p.name == name), None)
            text, stamp = (loaded.text, loaded.sha256) if loaded else (None, "")
        else:
            text, stamp = await policy_text(state.db_engine, name, sha256.lower()), sha256.lower()
        if text is None:
            raise NotFoundException("policy version not found")
        return Response(text.encode("utf-8"), media_type=YAML_MEDIA_TYPE, headers={"X-Guard-Policy-Sha256": stamp})

    @post(
        "/reload",
        operation_id="reloadPolicies",
        status_code=200,
        guards=[require_scope("policy:admin")],
        responses=ERROR_RESPONSES,
    )
    async def reload(self, request: Request[Any, Any, Any], state: State) -> Response[Any]:
        """Load, validate and store the whole directory, then swap atomically; on any error nothing changes (422)."""
        reloader: PolicyReloader = state.policy_reloader
        refused = await reloader.reload_logged("POST /v1/policies/reload")
        if refused is not None:
            return error_response(request, 422, f"policy reload refused, nothing changed: {refused}")
        return Response(policy_list(reloader.registry))
