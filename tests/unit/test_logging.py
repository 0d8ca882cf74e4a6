"""Log lines: JSON with the request and decision ids of their context; GUARD_LOG_FORMAT; the OTel switch."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import logging.config
import sys
from typing import Any

import pytest

from guard.logs import ContextFilter, decision_id_var, json_formatter, logging_config, request_id_var
from guard.settings import Settings

pytestmark = pytest.mark.unit


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("guard.test-logging")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_lines_carry_the_ids_of_their_own_context() -> None:
    logger, stream = _capture()

    async def request(rid: str, did: str | None) -> None:
        request_id_var.set(rid)
        await asyncio.sleep(0)  # interleave with the other request
        if did is not None:
            decision_id_var.set(did)
        logger.info("decision made in %.1f ms", 1.5)

    async def both() -> None:
        await asyncio.gather(request("r-1", "d-1"), request("r-2", None))

    contextvars.copy_context().run(asyncio.run, both())
    logger.info("outside any request")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["request_id"], line["decision_id"]) for line in lines] == [
        ("r-1", "d-1"),
        ("r-2", None),
        (None, None),
    ]
    first = lines[0]
    assert first["level"] == "INFO"
    assert first["logger"] == "guard.test-logging"
    assert first["message"] == "decision made in 1.5 ms"
    assert first["time"][:2] == "20"


def test_uvicorn_loggers_get_the_same_format() -> None:
    config = logging_config("json")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert config["loggers"][name] == {"handlers": ["default"], "level": "INFO", "propagate": False}
    assert "request_id" in logging_config("text")["formatters"]["guard"]["format"]
    with pytest.raises(ValueError, match="json or text"):
        logging_config("xml")


def test_log_format_defaults_per_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARD_LOG_FORMAT", raising=False)
    assert Settings.from_env(profile="production").observability.log_format == "json"
    assert Settings.from_env(profile="dev").observability.log_format == "text"
    monkeypatch.setenv("GUARD_LOG_FORMAT", "JSON")
    assert Settings.from_env(profile="dev").observability.log_format == "json"
    monkeypatch.setenv("GUARD_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="GUARD_LOG_FORMAT"):
        Settings.from_env(profile="dev")


def test_otel_without_the_extra_fails_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from guard.tracing import OtelUnavailable, otel_plugin

    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if guard[otel] were not installed
    with pytest.raises(OtelUnavailable, match=r"pip install 'guard\[otel\]'"):
        otel_plugin()


def test_otel_plugin_traces_requests_to_the_process_provider() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from litestar import Litestar, get
    from litestar.testing import TestClient
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from guard.tracing import RouteSpanMiddleware, otel_plugin

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    @get("/items/{item_id:int}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id}

    with TestClient(Litestar([item], plugins=[otel_plugin()], middleware=[RouteSpanMiddleware()])) as client:
        assert client.get("/items/7").status_code == 200
    spans = [span for span in exporter.get_finished_spans() if span.kind is trace.SpanKind.SERVER]
    assert [span.name for span in spans] == ["GET /items/{item_id}"]
    assert spans[0].attributes is not None
    assert spans[0].attributes.get("http.route") == "/items/{item_id}"
    assert spans[0].attributes.get("http.status_code", spans[0].attributes.get("http.response.status_code")) == 200
