"""The audit records the pipeline builds, and the strict and best-effort ways it writes them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import pytest

from guard.audit import AuditRecord
from guard.checks import Finding
from guard.engine import SamplingParams
from guard.pipeline import NOT_STORED, TEXT_NOT_KEPT, Caller, Checked, ServiceUnavailable, Shadow, Turn
from guard.pipeline.records import (
    AuditLog,
    abandoned_record,
    bare_record,
    closing_record,
    opening_record,
    refusal_record,
    scan_record,
    shadow_field,
)
from guard.policy import LoadedPolicy, PolicyRegistry
from tests.unit.pipeline.fakes import FakeWriter, write_policy

pytestmark = pytest.mark.unit

BLOCK = Finding(check="toxicity", type="toxicity", score=0.9, threshold=0.5, action="block", start=0, end=4)
REDACT = Finding(check="pii", type="EMAIL_ADDRESS", score=1.0, threshold=0.5, action="redact", start=0, end=4)


def _policies(tmp_path: Path, extra: str = "") -> PolicyRegistry:
    return PolicyRegistry.from_directory(write_policy(tmp_path, "test", extra=extra), "test")


def _turn(policy: LoadedPolicy, **fields: Any) -> Turn:
    record = {
        "route": "/v1/chat/completions",
        "policy_name": policy.name,
        "input_redacted": [{"role": "user", "content": "hi"}],
    }
    return Turn(
        decision_id="open-id",
        policy=policy,
        params=SamplingParams(max_tokens=8),
        started=time.perf_counter(),
        record=record,
        **fields,
    )


def test_a_stream_has_an_opening_and_a_linked_closing_record(tmp_path: Path) -> None:
    turn = _turn(_policies(tmp_path).get(), kind="stream_open", findings=[REDACT], subjects={"b", "a"}, tokens_in=3)
    opening = opening_record(turn)
    assert (opening.decision_id, opening.kind, opening.outcome, opening.http_status) == (
        "open-id",
        "stream_open",
        "ok",
        200,
    )
    assert opening.output_redacted is None
    assert opening.subject_hmacs == ["a", "b"]
    assert set(opening.latency_ms) == {"opened"}

    turn.checked_chars = turn.sent_chars = 10
    outcome = turn.answer("text", "stop", 3, 2, "stored text")
    closing = closing_record(turn, outcome)
    assert outcome.decision_id == closing.decision_id == turn.close_id
    assert (closing.kind, closing.parent_id, closing.output_redacted, closing.coverage) == (
        "stream_close",
        "open-id",
        "stored text",
        1.0,
    )
    assert closing.findings == [{**closing.findings[0], "check": "pii", "type": "EMAIL_ADDRESS"}]


def test_a_whole_answer_has_one_request_record(tmp_path: Path) -> None:
    turn = _turn(_policies(tmp_path).get())
    record = closing_record(turn, turn.answer("hello", "stop", 3, 1, None))
    assert (record.decision_id, record.kind, record.parent_id) == ("open-id", "request", None)
    assert record.output_redacted == "hello"  # no stored form: the text itself
    assert record.coverage == 1.0


def test_refusals_and_abandoned_streams(tmp_path: Path) -> None:
    turn = _turn(_policies(tmp_path).get(), kind="stream_open", decision="redact")
    failed = refusal_record(turn, outcome="error", status=503)
    assert (failed.kind, failed.outcome, failed.http_status, failed.decision) == ("stream_close", "error", 503, "block")
    gone = abandoned_record(turn)
    assert (gone.outcome, gone.http_status, gone.decision, gone.coverage) == ("error", 499, "redact", 0.0)
    bare = bare_record("/v1/scan", Caller(key_id="k", tenant="t"), "rejected", 403)
    assert (bare.key_id, bare.tenant, bare.policy_name, bare.decision, bare.input_redacted) == (
        "k",
        "t",
        None,
        "block",
        [],
    )


def test_the_policy_audit_options_take_text_and_scores_out(tmp_path: Path) -> None:
    policy = _policies(tmp_path, extra="audit: {store_text: false, store_scores: false}").get()
    checked = Checked(texts=["<EMAIL_ADDRESS_1>"], audit_texts=["<EMAIL_ADDRESS_1>"], findings=[REDACT])
    checked.scores.append({"stage": "input", "check": "pii", "scores": {"x": 1.0}})
    record = scan_record("id", Caller(), policy, "input", checked, None, prompt_hmac=None, started=time.perf_counter())
    assert record.input_redacted == [{"role": "input", "content": TEXT_NOT_KEPT}]
    assert record.scores == []
    assert record.decision == "redact"

    turn = _turn(policy)
    closing = closing_record(turn, turn.answer("out", "stop", 1, 1, None))
    assert (closing.output_redacted, closing.input_redacted) == (
        TEXT_NOT_KEPT,
        [{"role": "user", "content": TEXT_NOT_KEPT}],
    )


def test_a_scan_without_a_redacting_check_stores_the_marker(tmp_path: Path) -> None:
    checked = Checked(texts=["x"], audit_texts=[None])
    record = scan_record(
        "id",
        Caller(),
        _policies(tmp_path).get(),
        "output",
        checked,
        None,
        prompt_hmac=None,
        started=time.perf_counter(),
    )
    assert record.input_redacted == [{"role": "output", "content": NOT_STORED}]
    assert set(record.latency_ms) == {"checks", "total"}


def test_the_shadow_field_says_whether_the_candidate_agrees(tmp_path: Path) -> None:
    candidate = _policies(tmp_path).get()
    assert shadow_field(None, "allow") is None
    shadow = Shadow(candidate, findings=[BLOCK])
    field = shadow_field(shadow, "allow")
    assert field is not None
    assert (field["decision"], field["agree"], "error" in field) == ("block", False, False)
    assert field["findings"] == [{"check": "toxicity", "type": "toxicity", "action": "block", "stage": None}]
    shadow = Shadow(candidate, error="input checks failed (RuntimeError)")
    failed = shadow_field(shadow, "allow")
    assert failed is not None
    assert (failed["agree"], failed["error"]) == (False, shadow.error)


async def test_commits_are_strict_and_failure_records_best_effort() -> None:
    writer = FakeWriter()
    writer.fail_kinds = {"request"}
    audit = AuditLog(cast("Any", writer))
    record = bare_record("/v1/scan", Caller(), "rejected", 403)
    failing_ok = AuditRecord(**{**_fields(record), "outcome": "ok", "http_status": 200})
    with pytest.raises(ServiceUnavailable, match="the audit log is unavailable"):
        await audit.commit(failing_ok)
    await audit.write_best_effort(failing_ok)  # logged, not raised
    await audit.write_best_effort(record)
    assert writer.records == [record]


def _fields(record: AuditRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__struct_fields__}
