"""HTTP only: controllers, msgspec schemas, auth and error mapping."""

from __future__ import annotations

from litestar import Router
from litestar.types import ControllerRouterHandler

from guard.api.audit import AuditController
from guard.api.audit_verify import verify_audit_log
from guard.api.auth import hash_key, require_api_key
from guard.api.chat import ChatController
from guard.api.completions import CompletionsController
from guard.api.errors import EXCEPTION_HANDLERS, RequestIdMiddleware
from guard.api.health import healthz, readyz
from guard.api.litellm import litellm_guardrail
from guard.api.litellm_callers import CallerMap, CallerMapError
from guard.api.llm_guard import LLMGuardController
from guard.api.policies import PoliciesController, PolicyReloader
from guard.api.responses import ResponsesController
from guard.api.scan import ScanController
from guard.api.web import audit_page_router

__all__ = [
    "EXCEPTION_HANDLERS",
    "CallerMap",
    "CallerMapError",
    "PolicyReloader",
    "RequestIdMiddleware",
    "hash_key",
    "route_handlers",
]


def route_handlers() -> list[ControllerRouterHandler]:
    """Probes at the root; everything under /v1 needs the API key, and so do the routes of other gateways'
    protocols (LiteLLM's guardrail API, LLM Guard's API), at the paths their clients call; the reviewer page at
    /audit has its own sign-in session."""
    v1 = Router(
        path="/v1",
        route_handlers=[
            ChatController,
            CompletionsController,
            ResponsesController,
            ScanController,
            AuditController,
            verify_audit_log,
            PoliciesController,
        ],
        guards=[require_api_key],
    )
    gateways = Router(path="/", route_handlers=[litellm_guardrail, LLMGuardController], guards=[require_api_key])
    return [healthz, readyz, v1, gateways, audit_page_router()]
