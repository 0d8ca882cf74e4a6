"""The request lifecycle facade: policy → input checks → engine → output checks → audit commit → answer.

:class:`Pipeline` is what the API and the tools hold. Every way a stage can fail ends in
:class:`~guard.pipeline.errors.ServiceUnavailable` (the API answers 503): nothing unchecked or unaudited is ever
returned. Whole answers commit their one record before they return; a stream is one iterator of typed events
(:mod:`guard.pipeline.streaming`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator

from guard.audit import AuditWriter, SubjectHasher
from guard.checks import CheckItem, RequestScope, Stage
from guard.checks.batcher import CheckBatcher
from guard.engine import ChatMessage, Engine, SamplingParams
from guard.logs import decision_id_var
from guard.models import Models
from guard.pipeline.errors import InputTooLarge, InvalidParameter, ServiceUnavailable
from guard.pipeline.generation import Turns
from guard.pipeline.health import Health, probe_items
from guard.pipeline.records import AuditLog, bare_record, closing_record, opening_record, scan_record
from guard.pipeline.stage import CheckStage, Shadow, configured_checks
from guard.pipeline.streaming import StreamEvent, Streams
from guard.pipeline.tools import Structure
from guard.pipeline.turn import Caller, ChatOutcome, ScanOutcome, ScreenOutcome, Turn, elapsed_ms
from guard.policy import LoadedPolicy, PolicyRegistry

__all__ = ["Pipeline"]


class Pipeline:
    """The gateway's request lifecycle over the loaded models, the policies and the audit log."""

    def __init__(
        self,
        policies: PolicyRegistry,
        models: Models,
        writer: AuditWriter,
        hasher: SubjectHasher,
        *,
        max_new_tokens: int,
        check_timeout_s: float | None = None,
        request_timeout_s: float | None = None,
    ) -> None:
        """``check_timeout_s`` bounds each check call (queueing included) and ``request_timeout_s`` each request;
        ``None`` (offline tools that replay many texts at once) means unbounded. The server sets both."""
        self.policies = policies
        self.models = models
        self.writer = writer
        self.stage = CheckStage(models.checks, hasher, check_timeout_s=check_timeout_s)
        self.audit = AuditLog(writer)
        self.health = Health(
            self.batchers, models.engine, self._probe_items, check_timeout_s=check_timeout_s, audit=writer
        )
        self._turns = Turns(
            policies,
            models.engine,
            self.stage,
            self.audit,
            hasher,
            max_new_tokens=max_new_tokens,
            request_timeout_s=request_timeout_s,
        )
        self._streams = Streams(self.stage, self.audit, models.engine.token_bytes)

    def close(self) -> None:
        self.stage.close()

    @property
    def engine(self) -> Engine:
        return self.models.engine

    @property
    def batchers(self) -> dict[str, CheckBatcher]:
        """One micro-batcher (and worker thread) per check: concurrent requests' texts are checked together."""
        return self.stage.batchers

    def policy(self, name: str | None) -> LoadedPolicy:
        """The loaded policy ``name`` (the default for ``None``), or :class:`PolicyNotFound`."""
        return self._turns.policy(name)

    def _probe_items(self) -> dict[str, CheckItem]:
        return probe_items(self.policies.all(), self.batchers)

    # -- generation: chat and raw completions, whole or streamed -------------------------------------------------

    async def chat(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        *,
        policy_name: str | None,
        caller: Caller,
        route: str = "/v1/chat/completions",
        structure: Structure | None = None,
    ) -> ChatOutcome:
        """Answer a conversation; the one audit record is committed before this returns. ``structure`` constrains
        the answer (tool calls, a JSON Schema): such answers are checked whole, so a stream of one is sent after
        this returns."""
        opened: list[Turn] = []
        async with self._turns.deadline(route, caller, opened):
            turn = await self._turns.open(
                params, policy_name, caller, opened, messages=messages, route=route, structure=structure
            )
            outcome = await self._turns.answer(turn)
        await self.audit.commit(closing_record(turn, outcome))
        return outcome

    async def complete(
        self, prompt: str, params: SamplingParams, *, policy_name: str | None, caller: Caller
    ) -> ChatOutcome:
        """Continue raw text (base models, no chat template); audited like a chat."""
        opened: list[Turn] = []
        async with self._turns.deadline("/v1/completions", caller, opened):
            turn = await self._turns.open(params, policy_name, caller, opened, prompt=prompt)
            outcome = await self._turns.answer(turn)
        await self.audit.commit(closing_record(turn, outcome))
        return outcome

    async def stream(
        self,
        params: SamplingParams,
        *,
        policy_name: str | None,
        caller: Caller,
        messages: list[ChatMessage] | None = None,
        prompt: str | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """A streamed chat (``messages``) or completion (``prompt``) as events (:mod:`guard.pipeline.streaming`).

        Getting the first event, :class:`~guard.pipeline.streaming.Opened`, runs the input stage, submits to the
        engine and commits the opening record. Everything that can refuse the request (policy, limits, context, a
        full queue) raises there, before any byte of the response is sent, so those refusals are ordinary JSON
        errors. The request timeout bounds this part: once the response has started, a stream runs until it ends
        or its iterator is closed."""
        opened: list[Turn] = []
        route = "/v1/chat/completions" if messages is not None else "/v1/completions"
        async with self._turns.deadline(route, caller, opened):
            turn = await self._turns.open(params, policy_name, caller, opened, messages=messages, prompt=prompt)
            turn.kind = "stream_open"
            try:
                await self.audit.commit(opening_record(turn))
            except ServiceUnavailable:
                if turn.deltas is not None:
                    turn.deltas.cancel()
                raise
        async with contextlib.aclosing(self._streams.events(turn)) as events:
            async for event in events:
                yield event

    # -- checks only ----------------------------------------------------------------------------------------------

    async def scan(
        self, text: str, stage: Stage, *, policy_name: str | None, caller: Caller, context: str | None = None
    ) -> ScanOutcome:
        """Run the policy's ``stage`` checks on ``text`` (an output read beside ``context``, the request it answers);
        the record is committed before this returns."""
        screened = await self.screen([text], stage, policy_name=policy_name, caller=caller, context=context)
        return ScanOutcome(
            decision_id=screened.decision_id,
            decision=screened.decision,
            redacted_text=screened.texts[0],
            policy=screened.policy,
            findings=screened.findings,
        )

    async def screen(
        self,
        texts: list[str],
        stage: Stage,
        *,
        policy_name: str | None,
        caller: Caller,
        route: str = "/v1/scan",
        roles: list[str] | None = None,
        context: str | None = None,
        client_ref: str | None = None,
    ) -> ScreenOutcome:
        """Run the policy's ``stage`` checks on several texts of one call at once (one placeholder numbering across
        them; ``roles``: whose each text is, as in a chat, else every text is judged as the caller's), with one
        decision and one record, committed before this returns. ``client_ref`` is the calling gateway's id for the
        call, kept on the record."""
        started = time.perf_counter()
        policy = self.policy(policy_name)
        if context is not None and stage != "output":
            raise InvalidParameter("context is the request an output answers: it needs stage 'output'", param="context")
        if sum(map(len, texts)) + len(context or "") > policy.policy.limits.max_input_chars:
            raise InputTooLarge(f"the text exceeds {policy.policy.limits.max_input_chars} characters", param="text")
        decision_id = str(uuid.uuid4())
        decision_id_var.set(decision_id)  # for this request's log lines
        shadow = Shadow.of(policy, self.policies)
        try:
            async with asyncio.timeout(self._turns.request_timeout_s):
                checked = await self.stage.run(
                    policy, stage, texts, RequestScope(), shadow=shadow, roles=roles, prompt=context
                )
        except (ServiceUnavailable, TimeoutError) as exc:
            latency = {"total": elapsed_ms(started)}
            failed = bare_record(
                route,
                caller,
                "error",
                503,
                decision_id=decision_id,
                policy=policy,
                latency_ms=latency,
                client_ref=client_ref,
            )
            await self.audit.write_best_effort(failed)
            if isinstance(exc, TimeoutError):
                raise ServiceUnavailable("the request timed out") from None
            raise
        prompt_hmac = self._turns.prompt_hmac(texts[-1]) if stage == "input" and texts else None
        record = scan_record(
            decision_id,
            caller,
            policy,
            stage,
            checked,
            shadow,
            prompt_hmac=prompt_hmac,
            started=started,
            route=route,
            roles=roles,
            client_ref=client_ref,
        )
        await self.audit.commit(record)
        return ScreenOutcome(
            decision_id=decision_id,
            decision=record.decision,
            texts=checked.texts,
            policy=policy,
            findings=checked.findings,
            checks=configured_checks(policy, stage),
        )

    async def record_rejection(self, route: str, caller: Caller, status: int) -> None:
        """Audit a request refused before any policy ran (e.g. 403: its key may not use the policy it named)."""
        await self.audit.write_best_effort(bare_record(route, caller, "rejected", status))
