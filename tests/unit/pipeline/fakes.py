"""Small in-tree fakes for the pipeline's orchestration tests: checks, an engine, an audit writer and policies.

They follow the real protocols (``guard.checks.base.Check``, ``guard.engine.base.Engine``, the audit writer's
``write``) and no model is loaded: what these tests pin is the order and bookkeeping of the orchestration, not what
a check finds (tests/unit/checks and tests/integration do that on the dev models)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, cast

from guard.audit import AuditRecord, AuditUnavailable, SubjectHasher
from guard.checks import CheckItem, CheckResult, Finding
from guard.checks.base import Rewrite
from guard.engine import ChatMessage, EngineStats, SamplingParams, StreamDelta
from guard.models import Models
from guard.pipeline import Pipeline
from guard.policy import PolicyRegistry

__all__ = [
    "POLICY",
    "TRIGGER",
    "FakeEngine",
    "FakeInjection",
    "FakePii",
    "FakeRules",
    "FakeToxicity",
    "FakeWriter",
    "fake_checks",
    "make_pipeline",
    "write_policy",
]

TRIGGER = "grimbleshank"
"""The word the fake toxicity check blocks."""
_EMAIL = re.compile(r"[\w.]+@[\w]+\.\w+")
_NAME = re.compile(r"Maria|\uff2d\uff41\uff52\uff49\uff41")  # "Maria" and its fullwidth spelling
_CONTROL = "<start_of_turn>"

POLICY = r"""
name: {name}
version: "1.0.0"
refusal_message: "Refused."
{extra}
input:
  pii:
    restore: true
    entities: {{EMAIL_ADDRESS: redact, PERSON: redact, LOCATION: flag}}
  injection: {{}}
  prohibited_use:
    categories:
      weapons:
        patterns: ['\bbomb\b']
output:
  pii:
    entities: {{EMAIL_ADDRESS: redact}}
  toxicity:
    thresholds: {{toxicity: 0.5}}
"""


def write_policy(directory: Path, name: str = "test", extra: str = "", body: str = POLICY) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(body.format(name=name, extra=extra), encoding="utf-8")
    return directory


def _finding(check: str, type_: str, action: str, start: int, end: int, item: CheckItem, score: float = 1.0) -> Finding:
    return Finding(
        check=check, type=type_, score=score, threshold=0.5, action=action, start=start, end=end, stage=item.stage
    )  # type: ignore[arg-type]


class _Recording:
    """Remembers every item it was given (the checks run on their batchers' threads)."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self.seen: list[CheckItem] = []
        self.fail = False
        self.delay_s = 0.0
        self._lock = threading.Lock()

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        with self._lock:
            self.seen += items
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("injected check fault")
        return [self.result(item) for item in items]

    def result(self, item: CheckItem) -> CheckResult:
        raise NotImplementedError


class FakePii(_Recording):
    """Redacts e-mail addresses and the name Maria with the request's placeholders; flags "Paris" (LOCATION)."""

    name: ClassVar[str] = "pii"
    redacts: ClassVar[bool] = True

    def result(self, item: CheckItem) -> CheckResult:
        found = [("EMAIL_ADDRESS", "redact", m) for m in _EMAIL.finditer(item.text)]
        found += [("PERSON", "redact", m) for m in _NAME.finditer(item.text)]
        found += [("LOCATION", "flag", m) for m in re.finditer("Paris", item.text)]
        found.sort(key=lambda f: f[2].start())
        text, cursor, pieces, rewrites = item.text, 0, [], []
        for entity, action, match in found:
            if action == "redact":
                placeholder = item.scope.placeholder(entity, match.group(0))
                pieces += [text[cursor : match.start()], placeholder]
                rewrites.append(Rewrite(start=match.start(), end=match.end(), text=placeholder))
                cursor = match.end()
        findings = tuple(_finding(self.name, e, a, m.start(), m.end(), item) for e, a, m in found)
        return CheckResult(findings=findings, text="".join([*pieces, text[cursor:]]), rewrites=tuple(rewrites))


class FakeInjection(_Recording):
    """Rewrites a spelled ``<start_of_turn>`` (a ``redact`` finding), as the injection check neutralises it."""

    name: ClassVar[str] = "injection"

    def result(self, item: CheckItem) -> CheckResult:
        start = item.text.find(_CONTROL)
        if start < 0:
            return CheckResult()
        finding = _finding(self.name, "control_token", "redact", start, start + len(_CONTROL), item)
        return CheckResult(findings=(finding,), text=item.text.replace(_CONTROL, "[neutralised]"))


class FakeRules(_Recording):
    """Blocks "bomb" (prohibited use) and reports a score for every text."""

    name: ClassVar[str] = "prohibited_use"

    def result(self, item: CheckItem) -> CheckResult:
        start = item.text.find("bomb")
        findings = () if start < 0 else (_finding(self.name, "weapons", "block", start, start + 4, item),)
        return CheckResult(findings=findings, scores={"weapons": 1.0 if findings else 0.0})


class FakeToxicity(_Recording):
    """Blocks the text holding :data:`TRIGGER`; the finding spans the word in the text it was given."""

    name: ClassVar[str] = "toxicity"

    def result(self, item: CheckItem) -> CheckResult:
        start = item.text.find(TRIGGER)
        findings = () if start < 0 else (_finding(self.name, "toxicity", "block", start, start + len(TRIGGER), item),)
        return CheckResult(findings=findings, scores={"toxicity": 0.99 if findings else 0.01})


def fake_checks() -> dict[str, _Recording]:
    return {check.name: check for check in (FakePii(), FakeInjection(), FakeRules(), FakeToxicity())}


class FakeStream:
    """One sequence's deltas: ``pieces`` one by one, then stop; ``fail_after`` pieces it raises EngineError."""

    def __init__(self, pieces: list[str], fail_after: int | None = None) -> None:
        self._pieces = pieces
        self._fail_after = fail_after
        self._index = 0
        self.cancelled = False

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> StreamDelta:
        from guard.engine import EngineError

        if self._fail_after is not None and self._index >= self._fail_after:
            raise EngineError("injected engine fault")
        if self.cancelled or self._index >= len(self._pieces):
            raise StopAsyncIteration
        self._index += 1
        last = self._index == len(self._pieces)
        return StreamDelta(
            text=self._pieces[self._index - 1],
            token_ids=(),
            tokens_in=3,
            tokens_out=self._index,
            finish_reason="stop" if last else None,
        )

    def cancel(self) -> None:
        self.cancelled = True


class FakeEngine:
    """Answers every prompt with ``reply``, word by word; remembers the conversations it rendered."""

    name = "fake"
    model_id = "fake/model"
    revision = None
    is_dev = True
    description = "fake engine"
    context_length = 4096
    has_chat_template = True
    supports_logprobs = False

    def token_bytes(self, token_id: int) -> bytes:
        return str(token_id).encode()

    def __init__(self, reply: str = "Hello there. Have a good day.", fail_after: int | None = None) -> None:
        self.reply = reply
        self.fail_after = fail_after
        self.rendered: list[list[ChatMessage]] = []
        self.streams: list[FakeStream] = []

    def render_chat(self, messages: list[ChatMessage]) -> str:
        self.rendered.append(list(messages))
        return "\n".join(f"{m.role}: {m.content}" for m in messages)

    def tokenize(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        return list(range(len(text.split()) + int(add_special_tokens)))

    def stream(self, prompt: Any, params: SamplingParams) -> FakeStream:
        pieces = re.findall(r"\S+\s*", self.reply)
        self.streams.append(FakeStream(pieces, self.fail_after))
        return self.streams[-1]

    def stats(self) -> EngineStats:
        return EngineStats(running=0, waiting=0, max_running=4, max_waiting=8, healthy=True)


class FakeWriter:
    """Keeps the records in order; records of a kind in ``fail_kinds`` fail to commit. ``log`` is shared with
    the test, so records and stream events interleave in one timeline."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.records: list[AuditRecord] = []
        self.fail_kinds: set[str] = set()
        self.log = log if log is not None else []

    async def write(self, record: AuditRecord) -> None:
        if record.kind in self.fail_kinds and record.outcome == "ok":
            self.log.append(f"failed {record.kind}")
            raise AuditUnavailable("injected")
        self.records.append(record)
        self.log.append(f"record {record.kind} {record.outcome} {record.http_status}")


def make_pipeline(
    policies: PolicyRegistry,
    checks: dict[str, _Recording],
    engine: FakeEngine,
    writer: FakeWriter,
    *,
    check_timeout_s: float | None = None,
) -> Pipeline:
    models = Models(checks=cast("Any", checks), engine=cast("Any", engine), dev_models=[])
    return Pipeline(
        policies,
        models,
        cast("Any", writer),
        SubjectHasher(b"unit-test-key-32-bytes-long-ok!!"),
        max_new_tokens=64,
        check_timeout_s=check_timeout_s,
    )
