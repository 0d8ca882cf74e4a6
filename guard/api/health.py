"""Liveness and readiness probes (no auth: load balancers call them)."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.datastructures import State
from litestar.response import Response

from guard.audit import ping

__all__ = ["healthz", "readyz"]


@get("/healthz", operation_id="healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", operation_id="readyz", tags=["health"])
async def readyz(state: State) -> Response[dict[str, Any]]:
    """Models loaded and answering (each check probed, none stuck past its timeout; the engine's worker up and its
    last step successful), database reachable and migrated, policies valid; names the dev models in use."""
    checks: dict[str, str] = {}
    pipeline = getattr(state, "pipeline", None)
    checks["models"] = "ok" if pipeline is not None else "loading"
    if pipeline is not None:  # each check and the engine, actively probed (see guard.pipeline.Health)
        checks.update(await pipeline.health.report())
    try:
        await ping(state.db_engine)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable ({type(exc).__name__})"
    checks["policies"] = "ok" if state.policies.all() else "none loaded"
    ready = all(value == "ok" for value in checks.values())
    body: dict[str, Any] = {
        "status": "ready" if ready else "not_ready",
        "profile": state.profile,
        "checks": checks,
        "policies": [{"name": p.name, "version": p.version, "sha256": p.sha256} for p in state.policies.all()],
    }
    if pipeline is not None:
        engine = pipeline.engine
        body["models"] = {
            "generator": {"id": engine.model_id, "dev": engine.is_dev, "description": engine.description},
            **{name: {"description": text} for name, text in pipeline.models.checks.descriptions.items()},
        }
        body["dev_models"] = pipeline.models.dev_models
        stats = pipeline.engine.stats()
        body["engine"] = {
            "running": stats.running,
            "waiting": stats.waiting,
            "max_running": stats.max_running,
            "max_waiting": stats.max_waiting,
        }
    return Response(body, status_code=200 if ready else 503)
