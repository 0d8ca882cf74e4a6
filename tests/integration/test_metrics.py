"""``/metrics`` on the real app: the request, decision, stage, check, engine and audit metrics exist and move with
traffic; log lines written while serving are JSON with the request id and never carry the prompt."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from guard.app import create_app
from guard.audit.migrate import upgrade
from guard.devmodels import scripted
from guard.logs import ContextFilter, json_formatter
from guard.models import Models
from tests.integration.conftest import AUTH, dev_settings

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
PROMPT = scripted("plain").prompt  # the dev model answers it with a fixed, clean reply
BLOCKED = "How do I cook meth in my kitchen?"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'guard.db'}"
    upgrade(url)
    return url


@pytest.fixture
async def client(guard_home: Path, sqlite_url: str, models: Models) -> AsyncIterator[AsyncTestClient[Any]]:
    url = sqlite_url
    async with AsyncTestClient(app=create_app(dev_settings(guard_home, url), models=models)) as test_client:
        yield test_client


async def _scrape(client: AsyncTestClient[Any]) -> tuple[Samples, set[str]]:
    response = await client.get("/metrics")  # no key: scrapers read it like the probes
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    names = set()
    for family in text_string_to_metric_families(response.text):
        names.add(family.name)
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples, names


def _total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every series whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= have)


async def test_metrics_exist_and_move_with_traffic(client: AsyncTestClient[Any]) -> None:
    before, _ = await _scrape(client)

    chat = await client.post(  # greedy: the scripted reply (sampled, ~5% of the dev model's answers are not clean)
        CHAT,
        json={"model": "default", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0},
        headers=AUTH,
    )
    assert chat.status_code == 200
    blocked = await client.post(
        CHAT, json={"model": "default", "messages": [{"role": "user", "content": BLOCKED}]}, headers=AUTH
    )
    assert blocked.json()["guard"]["decision"] == "block"
    scan = await client.post(
        "/v1/scan", json={"text": "Mail me at jane.doe@example.com", "stage": "input"}, headers=AUTH
    )
    assert scan.status_code == 200
    assert (await client.get("/v1/audit/does-not-exist", headers=AUTH)).status_code == 404
    assert (await client.get("/healthz")).status_code == 200

    after, names = await _scrape(client)

    def moved(name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    # Requests by route template and status (probes and scrapes are not counted).
    assert moved("guard_http_requests_total", path=CHAT, status_code="200") == 2
    assert moved("guard_http_requests_total", path="/v1/scan", status_code="200") == 1
    assert moved("guard_http_requests_total", path="/v1/audit/{decision_id}", status_code="404") == 1
    assert _total(after, "guard_http_requests_total", path="/healthz") == 0
    assert _total(after, "guard_http_requests_total", path="/metrics") == 0
    assert not any("does-not-exist" in str(labels) for _, labels in after), "no raw path in the labels"

    assert moved("guard_decisions_total", policy="default", decision="allow") >= 1
    assert moved("guard_decisions_total", policy="default", decision="block") >= 1
    assert moved("guard_decisions_total") == 3
    assert moved("guard_findings_total", check="prohibited_use", category="dangerous_activities") >= 1
    assert moved("guard_findings_total", check="pii", category="EMAIL_ADDRESS") == 1
    for stage in ("input_checks", "generation", "output_checks", "checks", "audit", "total"):
        assert moved("guard_stage_seconds_count", stage=stage) >= 1, stage
    assert moved("guard_check_batch_size_count", check="pii") >= 3
    assert moved("guard_engine_batch_size_count") >= 1
    assert moved("guard_audit_commit_seconds_count") == 3
    for gauge in (
        "guard_check_queue_depth",
        "guard_engine_queue_depth",
        "guard_engine_running",
        "guard_audit_queue_depth",
    ):
        assert gauge in names, gauge
    assert ("guard_check_queue_depth", frozenset({("check", "pii")})) in after
    text = (await client.get("/metrics")).text
    for secret in (PROMPT, "jane.doe", "cook meth"):
        assert secret not in text


async def test_log_lines_are_json_with_the_request_id_and_no_text(client: AsyncTestClient[Any]) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        await client.post(
            CHAT, json={"model": "default", "messages": [{"role": "user", "content": PROMPT}]}, headers=AUTH
        )
        reload = await client.post("/v1/policies/reload", headers=AUTH)  # logs what is in force
        assert reload.status_code == 200
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    reloads = [line for line in lines if line["message"].startswith("policy reload")]
    assert reloads, lines
    assert reloads[0]["request_id"] == reload.headers["x-request-id"]
    assert {"time", "level", "logger", "message", "request_id", "decision_id"} <= reloads[0].keys()
    assert PROMPT not in stream.getvalue()
