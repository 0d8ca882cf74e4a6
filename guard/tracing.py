"""Optional OpenTelemetry tracing (``GUARD_OTEL=1``, extra ``guard[otel]``) through Litestar's plugin.

Spans go to the process's tracer provider. When the deployment has not set one (e.g. with
``opentelemetry-instrument``), guard sets an SDK provider that exports over OTLP/HTTP to the standard
``OTEL_EXPORTER_OTLP_*`` endpoint. Spans are named by route template (never the raw path) and carry no bodies.
"""

from __future__ import annotations

from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from guard.errors import GuardError

__all__ = ["OtelUnavailable", "RouteSpanMiddleware", "otel_plugin"]

_HINT = "GUARD_OTEL=1 needs the OpenTelemetry packages: pip install 'guard[otel]' (or unset GUARD_OTEL)"


class OtelUnavailable(GuardError, RuntimeError):
    """Tracing was asked for but the ``otel`` extra is not installed."""


def otel_plugin() -> Any:
    """Litestar's OpenTelemetry plugin on the process's tracer provider (set up here if there is none).

    Its span starts before routing, so it is named by the method alone; :class:`RouteSpanMiddleware` (after
    routing) renames it to the route template."""
    try:
        from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise OtelUnavailable(f"{_HINT} ({exc.name} is missing)") from None
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": "guard"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    return OpenTelemetryPlugin(OpenTelemetryConfig(scope_span_details_extractor=_method_only))


def _method_only(scope: Any) -> tuple[str, dict[str, Any]]:
    return str(scope.get("method", "HTTP")), {}


class RouteSpanMiddleware(ASGIMiddleware):
    """Names the request's server span ``METHOD /route/{template}`` and sets ``http.route`` once routed."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        from opentelemetry import trace

        route = scope.get("path_template")
        span = trace.get_current_span()
        if route and span.is_recording():
            span.update_name(f"{scope.get('method', 'HTTP')} {route}")
            span.set_attribute("http.route", route)
        await next_app(scope, receive, send)
