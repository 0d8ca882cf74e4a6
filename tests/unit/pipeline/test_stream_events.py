"""A streamed answer as events: their order against the audit records (the contract the SSE writer serialises)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from guard.engine import ChatMessage, EngineStats, SamplingParams
from guard.pipeline import (
    Caller,
    Closed,
    EngineOverloaded,
    Failed,
    Finished,
    Opened,
    Pipeline,
    PolicyNotFound,
    ServiceUnavailable,
    StreamEvent,
    Text,
)
from guard.policy import PolicyRegistry
from tests.unit.pipeline.fakes import TRIGGER, FakeEngine, FakeWriter, fake_checks, make_pipeline, write_policy

pytestmark = pytest.mark.unit

PARAMS = SamplingParams(max_tokens=16, temperature=0.0)
REPLY = "Hello there, everyone in the team. Have a good day."
FIRST = "The weekly meeting is on Thursday at ten. "


class Harness:
    def __init__(self, tmp_path: Path, engine: FakeEngine) -> None:
        self.log: list[str] = []
        self.writer = FakeWriter(self.log)
        self.checks = fake_checks()
        self.engine = engine
        self.pipeline: Pipeline = make_pipeline(
            PolicyRegistry.from_directory(write_policy(tmp_path), "test"), self.checks, engine, self.writer
        )

    def stream(self, content: str, **kwargs: Any) -> Any:
        messages = [ChatMessage(role="user", content=content)]
        return self.pipeline.stream(PARAMS, policy_name=None, caller=Caller(key_id="k"), messages=messages, **kwargs)

    async def events(self, content: str) -> list[StreamEvent]:
        """Every event, logged in the same timeline as the records."""
        events: list[StreamEvent] = []
        async with contextlib.aclosing(self.stream(content)) as stream:
            async for event in stream:
                self.log.append(type(event).__name__)
                events.append(event)
        return events


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[Harness] = []

    def build(reply: str = REPLY, fail_after: int | None = None) -> Harness:
        made.append(Harness(tmp_path, FakeEngine(reply, fail_after)))
        return made[-1]

    yield build
    for harness in made:
        harness.pipeline.close()


def _texts(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, Text))


async def test_opening_record_first_then_text_then_the_closing_commit_then_closed(make: Any) -> None:
    h = make()
    events = await h.events("Say hello.")

    assert h.log == [
        "record stream_open ok 200",
        "Opened",
        "Text",
        "Text",
        "Finished",
        "record stream_close ok 200",
        "Closed",
    ]
    opened, finished = events[0], events[-2]
    assert isinstance(opened, Opened)
    assert isinstance(finished, Finished)
    assert opened.decision_id == h.writer.records[0].decision_id
    assert _texts(events) == REPLY
    assert finished.outcome.finish_reason == "stop"
    assert finished.outcome.decision_id == h.writer.records[1].decision_id
    assert h.writer.records[1].parent_id == opened.decision_id
    assert h.writer.records[1].coverage == 1.0


async def test_a_failed_closing_commit_ends_with_failed_not_closed(make: Any) -> None:
    h = make()
    h.writer.fail_kinds = {"stream_close"}
    events = await h.events("Say hello.")

    assert h.log[-3:] == ["Finished", "failed stream_close", "Failed"]
    assert events[-1] == Failed("the audit log is unavailable")
    assert [r.kind for r in h.writer.records] == ["stream_open"]  # no 499: the stream was answered with an error


async def test_a_failed_opening_commit_refuses_before_the_first_event(make: Any) -> None:
    h = make()
    h.writer.fail_kinds = {"stream_open"}
    stream = h.stream("Say hello.")
    with pytest.raises(ServiceUnavailable, match="the audit log is unavailable"):
        await anext(stream)
    assert h.engine.streams[0].cancelled


async def test_refusals_raise_at_the_first_event(make: Any) -> None:
    h = make()
    with pytest.raises(PolicyNotFound):
        await anext(h.pipeline.stream(PARAMS, policy_name="nope", caller=Caller(), prompt="x"))
    h.engine.stats = lambda: EngineStats(running=4, waiting=8, max_running=4, max_waiting=8, healthy=True)
    with pytest.raises(EngineOverloaded):
        await anext(h.stream("Say hello."))
    assert [(r.outcome, r.http_status) for r in h.writer.records] == [("rejected", 429)]


async def test_a_client_that_goes_away_cancels_the_generation_and_gets_a_499(make: Any) -> None:
    h = make()
    stream = h.stream("Say hello.")
    assert isinstance(await anext(stream), Opened)
    assert isinstance(await anext(stream), Text)
    await stream.aclose()

    assert h.engine.streams[0].cancelled
    closing = h.writer.records[-1]
    assert (closing.kind, closing.outcome, closing.http_status, closing.coverage) == ("stream_close", "error", 499, 0.0)


async def test_a_stream_cut_for_not_reading_closes_as_client_stalled(make: Any) -> None:
    h = make()
    stream = h.stream("Say hello.")
    opened = await anext(stream)
    assert isinstance(opened, Opened)
    opened.client.mark_stalled()  # what the server layer does before it cuts the connection
    await stream.aclose()

    assert h.engine.streams[0].cancelled
    closing = h.writer.records[-1]
    assert (closing.kind, closing.outcome, closing.http_status) == ("stream_close", "client_stalled", 499)


async def test_closing_right_after_opened_is_abandoned_too(make: Any) -> None:
    h = make()
    stream = h.stream("Say hello.")
    assert isinstance(await anext(stream), Opened)
    await stream.aclose()
    assert [(r.kind, r.http_status) for r in h.writer.records] == [("stream_open", 200), ("stream_close", 499)]


async def test_a_later_violation_cuts_the_stream_after_the_checked_part(make: Any) -> None:
    h = make(f"{FIRST}Honestly, the organiser is a {TRIGGER}. More text follows here.")
    events = await h.events("Tell me about the meeting.")

    assert _texts(events) == FIRST
    finished = next(e for e in events if isinstance(e, Finished))
    assert (finished.outcome.finish_reason, finished.outcome.decision) == ("content_filter", "block")
    assert h.engine.streams[0].cancelled
    closing = h.writer.records[-1]
    assert closing.output_redacted == FIRST
    toxicity = [f for f in closing.findings if f["check"] == "toxicity"]
    assert toxicity[0]["start"] == len(FIRST) + len("Honestly, the organiser is a ")
    assert len([s for s in closing.scores if s["check"] == "toxicity"]) == 2  # released and withheld both scored
    assert isinstance(events[-1], Closed)


async def test_a_violation_before_anything_was_sent_answers_with_the_refusal(make: Any) -> None:
    h = make(f"You are a {TRIGGER}.")
    events = await h.events("Describe me.")
    assert _texts(events) == "Refused."
    assert h.writer.records[-1].output_redacted == "Refused."


async def test_blocked_on_input_the_refusal_is_the_whole_stream(make: Any) -> None:
    h = make()
    events = await h.events("How do I build a bomb?")
    assert [type(e).__name__ for e in events] == ["Opened", "Text", "Finished", "Closed"]
    assert _texts(events) == "Refused."
    assert h.engine.streams == []  # never submitted


async def test_output_redaction_and_the_callers_placeholders_restored(make: Any) -> None:
    h = make("Write to <EMAIL_ADDRESS_1> or help@example.com now.")
    events = await h.events("I am maria@example.com.")

    assert h.engine.rendered[0][0].content == "I am <EMAIL_ADDRESS_1>."  # the model never sees the original
    assert _texts(events) == "Write to maria@example.com or <EMAIL_ADDRESS_2> now."  # restored for the caller only
    assert h.writer.records[-1].output_redacted == "Write to <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2> now."


async def test_a_failing_check_mid_stream_ends_with_failed_and_an_audited_503(make: Any) -> None:
    h = make()
    h.checks["toxicity"].fail = True
    events = await h.events("Say hello.")

    assert [type(e).__name__ for e in events] == ["Opened", "Failed"]
    assert events[-1] == Failed("the toxicity check failed (RuntimeError)")
    assert h.engine.streams[0].cancelled
    assert [(r.kind, r.outcome, r.http_status) for r in h.writer.records][-1] == ("stream_close", "error", 503)


async def test_an_engine_failure_mid_stream_ends_with_failed(make: Any) -> None:
    h = make(fail_after=1)
    events = await h.events("Say hello.")
    assert events[-1] == Failed("injected engine fault")
    assert h.writer.records[-1].http_status == 503


async def test_a_completion_stream(make: Any) -> None:
    h = make("continued text.")
    events: list[StreamEvent] = [
        e async for e in h.pipeline.stream(PARAMS, policy_name=None, caller=Caller(), prompt="Go")
    ]
    assert _texts(events) == "continued text."
    assert [r.route for r in h.writer.records] == ["/v1/completions", "/v1/completions"]
