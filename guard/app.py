"""The application factory: ``create_app(settings) -> Litestar``.

Policies are validated when the app is created (an invalid file fails startup with file, line and reason);
models load once, in the lifespan unless the caller preloaded them, and live on ``app.state``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from guard import __version__, metrics
from guard.api import (
    EXCEPTION_HANDLERS,
    CallerMap,
    CallerMapError,
    PolicyReloader,
    RequestIdMiddleware,
    hash_key,
    route_handlers,
)
from guard.api.policy_poll import poll_policies
from guard.audit import AuditWriter, SubjectHasher, create_engine, load_keyring
from guard.errors import GuardError
from guard.models import Models, load_models
from guard.pipeline import Pipeline
from guard.policy import PolicyRegistry
from guard.settings import Profile, Settings
from guard.store.policy_versions import PolicyVersionConflict, record_policy_versions
from guard.store.rate_limits import Rate, RateLimiter, parse_rate
from guard.store.rate_limits_redis import RedisRateLimiter
from guard.store.sessions import SESSION_NAMESPACE, ReviewerSessionStore
from guard.store.sign_ins import SignIns
from guard.tracing import OtelUnavailable, RouteSpanMiddleware, otel_plugin

__all__ = ["StartupError", "create_app", "resolve_api_key"]

logger = logging.getLogger("guard")


class StartupError(GuardError, RuntimeError):
    """The service cannot start; the message says why and what to do."""


def resolve_api_key(settings: Settings) -> tuple[str, bool]:
    """The bootstrap key and whether it was generated: the dev profile makes one and keeps it in GUARD_HOME."""
    if settings.api.api_key:
        return settings.api.api_key, False
    if settings.profile is not Profile.DEV:
        raise StartupError("GUARD_API_KEY is not set: set a bootstrap API key (e.g. `openssl rand -hex 32`)")
    path = settings.home / "dev-api-key"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip(), False
    key = "gk-dev-" + secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key, True


async def _record_startup_policies(db_engine: AsyncEngine, policies: PolicyRegistry) -> None:
    """Store every loaded policy version, so each decision's stamp resolves to its YAML; refuse changed versions."""
    try:
        await record_policy_versions(db_engine, policies.all())
    except PolicyVersionConflict as exc:
        await db_engine.dispose()
        raise StartupError(str(exc)) from None
    except (SQLAlchemyError, OSError) as exc:
        await db_engine.dispose()
        raise StartupError(
            f"the policy versions could not be stored ({type(exc).__name__}): is the database reachable and "
            "migrated (`guard db upgrade`)?"
        ) from None


class MetricsController(PrometheusController):
    """``GET /metrics`` for scrapers: unauthenticated like the probes, counts and latencies only (no text)."""

    include_in_schema = False


# Request metrics by route template (path parameters don't multiply series); probes and scrapes are not counted.
_PROMETHEUS = PrometheusConfig(
    app_name="guard", prefix="guard_http", group_path=True, exclude=["^/metrics", "^/healthz", "^/readyz"]
)


def _metrics_probe(pipeline: Pipeline, writer: AuditWriter) -> metrics.Probe:
    """The live gauges of one app, read on scrape: check, engine and audit queues."""

    def probe() -> list[metrics.Sample]:
        stats = pipeline.engine.stats()
        return [
            *(("guard_check_queue_depth", (name,), b.queue_depth) for name, b in pipeline.batchers.items()),
            ("guard_engine_queue_depth", (), stats.waiting),
            ("guard_engine_running", (), stats.running),
            ("guard_audit_queue_depth", (), writer.queue_depth),
        ]

    return probe


_background: set[asyncio.Task[object]] = set()


def _configure_gateways(app: Litestar, settings: Settings) -> None:
    """What the other gateways' routes choose policies by: the LiteLLM caller rules (``GUARD_LITELLM_CALLERS``; a
    file that cannot be used stops the start) and the LLM Guard routes' policy."""
    try:
        app.state.litellm_callers = CallerMap.load(settings.integrations.litellm_callers)
    except CallerMapError as exc:
        raise StartupError(str(exc)) from None
    app.state.llm_guard_policy = settings.integrations.llm_guard_policy


def _install_sighup(reloader: PolicyReloader) -> bool:
    """SIGHUP reloads the policies like ``POST /v1/policies/reload``; False where signals cannot be handled."""
    if not hasattr(signal, "SIGHUP"):
        return False

    def on_sighup() -> None:
        task = asyncio.ensure_future(reloader.reload_logged("SIGHUP"))
        _background.add(task)  # the loop keeps only a weak reference to tasks
        task.add_done_callback(_background.discard)

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
    except (NotImplementedError, RuntimeError, ValueError):  # no signal support here, or not the main thread
        logger.info("SIGHUP policy reload unavailable here; use POST /v1/policies/reload")
        return False
    return True


def _sign_in_rate(settings: Settings) -> Rate:
    try:
        return parse_rate(settings.api.sign_in_rate)
    except ValueError as exc:
        raise StartupError(f"GUARD_SIGN_IN_RATE: {exc}") from None


def _limits(
    app: Litestar, settings: Settings, db_engine: AsyncEngine, hasher: SubjectHasher
) -> RedisRateLimiter | None:
    """Per-key rate limits (in Redis when configured, else the database), and the reviewer page's sessions and
    sign-in failures, in the database so every replica on it shares them. Returns the Redis limiter to close."""
    redis_url = settings.database.redis_url
    redis_limiter = RedisRateLimiter(redis_url) if redis_url else None
    app.state.rate_limiter = redis_limiter or RateLimiter(db_engine)
    app.stores.register(SESSION_NAMESPACE, ReviewerSessionStore(db_engine), allow_override=True)
    app.state.sign_ins = SignIns(db_engine, _sign_in_rate(settings))
    app.state.subject_hasher = hasher
    return redis_limiter


def create_app(settings: Settings, *, models: Models | None = None) -> Litestar:
    policies = PolicyRegistry.from_directory(settings.policy.directory, settings.policy.default)
    _sign_in_rate(settings)  # an unusable rate stops the start here, before any model loads
    api_key, generated = resolve_api_key(settings)
    if settings.profile is Profile.DEV and not settings.api.api_key:
        state = "generated" if generated else "reused"
        logger.warning("dev profile: API key (%s, kept in %s): %s", state, settings.home / "dev-api-key", api_key)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        loaded = models if models is not None else await asyncio.to_thread(load_models, settings)
        if loaded.dev_models:
            logger.warning("DEV MODELS IN USE (not for production): %s", "; ".join(loaded.dev_models))
        db_engine = create_engine(settings.database.url)
        await _record_startup_policies(db_engine, policies)
        hasher = SubjectHasher(load_keyring(settings.home / "audit-hmac.key", settings.keys.audit_hmac))
        writer = AuditWriter(db_engine)
        pipeline = Pipeline(
            policies,
            loaded,
            writer,
            hasher,
            max_new_tokens=settings.engine.max_new_tokens,
            check_timeout_s=settings.api.check_timeout_s,
            request_timeout_s=settings.api.request_timeout_s,
        )
        await loaded.engine.start()
        app.state.db_engine = db_engine
        redis_limiter = _limits(app, settings, db_engine, hasher)
        app.state.pipeline = pipeline
        app.state.policy_reloader = reloader = PolicyReloader(
            settings.policy.directory, policies, db_engine, loaded.checks
        )
        sighup = _install_sighup(reloader)
        poller = (
            asyncio.create_task(poll_policies(reloader, settings.policy.poll_s)) if settings.policy.poll_s > 0 else None
        )
        metrics.add_probe(app, _metrics_probe(pipeline, writer))
        logger.info("guard ready: %s", loaded.engine.description)
        try:
            yield
        finally:
            metrics.remove_probe(app)
            if poller is not None:
                poller.cancel()
            if sighup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await loaded.engine.stop()
            pipeline.close()
            await writer.aclose()  # commit what is queued before the engine goes
            if redis_limiter is not None:
                await redis_limiter.aclose()
            await db_engine.dispose()

    try:
        plugins = [otel_plugin()] if settings.observability.otel else []
    except OtelUnavailable as exc:
        raise StartupError(str(exc)) from None
    app = Litestar(
        route_handlers=[*route_handlers(), MetricsController],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[RequestIdMiddleware(), _PROMETHEUS.middleware, *([RouteSpanMiddleware()] if plugins else [])],
        plugins=plugins,
        lifespan=[lifespan],
        request_max_body_size=settings.api.max_body_bytes,
        openapi_config=OpenAPIConfig(title="guard", version=__version__, path="/schema"),
        debug=False,
    )
    app.state.policies = policies
    _configure_gateways(app, settings)
    app.state.profile = settings.profile.value
    app.state.api_key_hash = hash_key(api_key)
    app.state.started_at = time.time()
    return app
