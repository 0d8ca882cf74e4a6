"""A generation request's way in and, when it is answered whole, out: limits, input checks, the engine submission,
the output checks and the decision; every refusal or failure on the way is audited (best effort) before it raises.

Nothing here commits the record that answers a request: the caller (:mod:`guard.pipeline.service` for whole
answers, :mod:`guard.pipeline.streaming` for streams) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from guard.audit import SubjectHasher
from guard.checks import Finding
from guard.engine import (
    ChatMessage,
    Engine,
    EngineBusy,
    EngineError,
    InvalidConversation,
    PromptTooLong,
    SamplingParams,
    TokenLogprob,
)
from guard.engine.grammar import InvalidGrammar
from guard.engine.tool_format import FunctionSpec, ParsedCall, parse_calls
from guard.logs import decision_id_var
from guard.pipeline.errors import (
    ContextLengthExceeded,
    EngineOverloaded,
    InputTooLarge,
    InvalidParameter,
    PolicyNotFound,
    ServiceUnavailable,
)
from guard.pipeline.logprobs import LogprobRelease
from guard.pipeline.records import NOT_STORED, AuditLog, bare_record, refusal_record
from guard.pipeline.stage import CheckStage, Shadow
from guard.pipeline.tools import Structure, check_calls, offer
from guard.pipeline.turn import Caller, ChatOutcome, Turn, elapsed_ms
from guard.policy import LoadedPolicy, PolicyRegistry, strongest

__all__ = ["Turns"]


def _with_calls(findings: list[Finding], calls: list[str | None] | None) -> list[Finding]:
    """Findings in a tool result named by the call it answers."""
    if not calls:
        return list(findings)
    return [
        msgspec.structs.replace(f, tool_call=calls[f.message_index])
        if f.message_index is not None and f.message_index < len(calls) and calls[f.message_index]
        else f
        for f in findings
    ]


logger = logging.getLogger(__name__)

_CHECKED_AS = {"tool": "user"}
"""A tool's result is outside text, like a user's: the input checks treat it as one (injection included)."""

Render = Callable[[list[str], tuple[FunctionSpec, ...]], list[int]]
"""The prompt's token ids from the checked (redacted) texts and the functions offered to the model."""


class Turns:
    """Opens turns (limits, input checks, the engine submission) and answers them whole."""

    def __init__(
        self,
        policies: PolicyRegistry,
        engine: Engine,
        stage: CheckStage,
        audit: AuditLog,
        hasher: SubjectHasher,
        *,
        max_new_tokens: int,
        request_timeout_s: float | None,
    ) -> None:
        self.policies = policies
        self.request_timeout_s = request_timeout_s
        self._engine = engine
        self._stage = stage
        self._audit = audit
        self._hasher = hasher
        self._max_new_tokens = max_new_tokens

    def policy(self, name: str | None) -> LoadedPolicy:
        try:
            return self.policies.get(name)
        except KeyError:
            raise PolicyNotFound("unknown policy") from None

    def prompt_hmac(self, text: str) -> str | None:
        """A keyed digest of the (last) user message as sent, so reviewers can find the same prompt elsewhere."""
        return self._hasher.digest("PROMPT", text) if text.strip() else None

    @contextlib.asynccontextmanager
    async def deadline(self, route: str, caller: Caller, opened: list[Turn]) -> AsyncIterator[None]:
        """Bound the block by the request timeout; past it, cancel the generation, audit the 503 and raise."""
        try:
            async with asyncio.timeout(self.request_timeout_s):
                yield
        except TimeoutError:
            logger.error("request on %s timed out after %s s", route, self.request_timeout_s)
            if opened:
                if opened[0].deltas is not None:
                    opened[0].deltas.cancel()  # its engine slot is freed at the next step
                await self._audit.failed(opened[0])
            else:
                await self._audit.write_best_effort(bare_record(route, caller, "error", 503))
            raise ServiceUnavailable("the request timed out") from None

    async def open(
        self,
        params: SamplingParams,
        policy_name: str | None,
        caller: Caller,
        opened: list[Turn],
        *,
        messages: list[ChatMessage] | None = None,
        prompt: str | None = None,
        route: str = "/v1/chat/completions",
        structure: Structure | None = None,
    ) -> Turn:
        """A chat (``messages``, on ``route``) or a raw completion (``prompt``) through its input stage and into
        the engine; ``structure`` (chats only) constrains the answer to tool calls and/or a JSON Schema."""
        if messages is not None:

            def render_chat(texts: list[str], tools: tuple[FunctionSpec, ...]) -> list[int]:
                redacted = [dataclasses.replace(m, content=t) for m, t in zip(messages, texts, strict=True)]
                rendered = self._engine.render_chat(redacted, tools) if tools else self._engine.render_chat(redacted)
                return self._engine.tokenize(rendered)

            turns: list[tuple[str, str]] = [(m.role, m.content) for m in messages]
            calls = [m.tool_call_id if m.role == "tool" else None for m in messages]
            return await self._open(
                route, turns, render_chat, params, policy_name, caller, opened, structure=structure, calls=calls
            )

        def render_raw(texts: list[str], _: tuple[FunctionSpec, ...]) -> list[int]:
            return self._engine.tokenize(texts[0], add_special_tokens=True)  # base models expect <bos>

        return await self._open(
            "/v1/completions", [("prompt", prompt or "")], render_raw, params, policy_name, caller, opened
        )

    async def _open(
        self,
        route: str,
        turns: list[tuple[str, str]],
        render: Render,
        params: SamplingParams,
        policy_name: str | None,
        caller: Caller,
        opened: list[Turn],
        *,
        structure: Structure | None = None,
        calls: list[str | None] | None = None,
    ) -> Turn:
        """Limits, the input checks, then (unless blocked) the prompt and the engine submission; the turn is
        appended to ``opened`` as soon as it exists (so a timed-out request can be audited). ``calls``: per
        message, the tool call id a tool result answers (its findings name it)."""
        started = time.perf_counter()
        policy = self.policy(policy_name)
        field = "prompt" if route == "/v1/completions" else "messages"
        if sum(len(text) for _, text in turns) > policy.policy.limits.max_input_chars:
            limit = policy.policy.limits.max_input_chars
            raise InputTooLarge(f"the input exceeds this policy's limit of {limit} characters", param=field)
        if params.max_tokens > self._max_new_tokens:
            raise InvalidParameter(f"max_tokens must be at most {self._max_new_tokens}", param="max_tokens")
        record: dict[str, Any] = {
            "route": route,
            "policy_name": policy.name,
            "policy_version": policy.version,
            "policy_sha256": policy.sha256,
            "engine": self._engine.name,
            "model": self._engine.model_id,
            "model_revision": self._engine.revision,
            "key_id": caller.key_id,
            "tenant": caller.tenant,
            "prompt_hmac": self.prompt_hmac(next((t for r, t in reversed(turns) if r in ("user", "prompt")), "")),
        }
        turn = Turn(decision_id=str(uuid.uuid4()), policy=policy, params=params, started=started, record=record)
        decision_id_var.set(turn.decision_id)  # for this request's log lines
        opened.append(turn)
        stats = self._engine.stats()
        if stats.waiting >= stats.max_waiting:  # shed load before spending time on checks
            await self._reject(turn, 429)
            raise EngineOverloaded("the engine queue is full")
        texts = [text for _, text in turns]
        turn.shadow = Shadow.of(policy, self.policies)
        try:
            checked = await self._stage.run(
                policy, "input", texts, turn.scope, shadow=turn.shadow, roles=[_CHECKED_AS.get(r, r) for r, _ in turns]
            )
        except ServiceUnavailable:
            await self._audit.failed(turn)
            raise
        turn.scope.seal_input()
        # What an answer responds to, for output checks that judge the pair (the judge): the last user turn, redacted.
        users = [text for (role, _), text in zip(turns, checked.texts, strict=True) if role == "user"]
        turn.prompt = users[-1] if users else None
        turn.latency["input_checks"] = elapsed_ms(started)
        turn.findings, turn.subjects = _with_calls(checked.findings, calls), set(checked.subjects)
        turn.scores = list(checked.scores)
        params = self._offer(turn, structure)
        turn.decision = strongest([f.action for f in turn.findings])
        record["input_redacted"] = [
            {"role": role, "content": audit if audit is not None else NOT_STORED}
            for (role, _), audit in zip(turns, checked.audit_texts, strict=True)
        ]
        if turn.decision == "block":
            with contextlib.suppress(InvalidConversation):  # usage counts the prompt a refused request sent
                turn.tokens_in = len(render(checked.texts, turn.offered))
            return turn
        prompt = render(checked.texts, turn.offered)
        turn.tokens_in = len(prompt)
        await self._submit(turn, prompt, params, field)
        return turn

    async def _submit(self, turn: Turn, prompt: list[int], params: SamplingParams, field: str) -> None:
        """Hand the prompt to the engine; its refusals become the API's (audited where the request was read)."""
        try:
            turn.deltas = self._engine.stream(prompt, params)
        except InvalidGrammar as exc:
            await self._reject(turn, 400)
            param = "tools" if turn.offered else "response_format"
            raise InvalidParameter(str(exc), param=param) from None
        except PromptTooLong as exc:
            lengths = {"prompt_tokens": exc.prompt_tokens, "max_tokens": exc.max_tokens}
            raise ContextLengthExceeded(**lengths, context_length=exc.context_length, param=field) from None
        except EngineBusy:
            await self._reject(turn, 429)
            raise EngineOverloaded("the engine queue is full") from None
        except EngineError as exc:
            await self._audit.failed(turn)
            raise ServiceUnavailable(str(exc)) from None

    async def answer(self, turn: Turn) -> ChatOutcome:
        """Collect the generation, run the output checks, decide; nothing is committed here."""
        policy = turn.policy.policy
        if turn.deltas is None:  # blocked on input
            return turn.answer(policy.refusal_message, "content_filter", turn.tokens_in, 0, None)
        generation_started = time.perf_counter()
        parts: list[str] = []
        logprobs: list[TokenLogprob] = []
        finish: str = "length"
        tokens_out = 0
        try:
            async for delta in turn.deltas:
                parts.append(delta.text)
                logprobs += delta.logprobs
                tokens_out, finish = delta.tokens_out, delta.finish_reason or finish
        except EngineError as exc:
            await self._audit.failed(turn)
            raise ServiceUnavailable(str(exc)) from None
        turn.latency["generation"] = elapsed_ms(generation_started)
        output_started = time.perf_counter()
        generated = ["".join(parts)]
        parsed = parse_calls(generated[0]) if turn.offered else None
        if parsed is not None:
            return await self._answer_calls(turn, parsed, tokens_out, output_started)
        try:
            out = await self._stage.run(
                turn.policy, "output", generated, turn.scope, shadow=turn.shadow, prompt=turn.prompt
            )
        except ServiceUnavailable:
            await self._audit.failed(turn)
            raise
        turn.latency["output_checks"] = elapsed_ms(output_started)
        turn.findings += out.findings
        turn.subjects |= out.subjects
        turn.scores += out.scores
        turn.decision = strongest([f.action for f in turn.findings])
        stored = out.audit_texts[0] if out.audit_texts[0] is not None else NOT_STORED
        if any(f.action == "block" for f in out.findings):
            return turn.answer(policy.refusal_message, "content_filter", turn.tokens_in, tokens_out, stored)
        text = turn.for_caller(out.texts[0])
        released = None
        if turn.params.logprobs is not None:
            release = LogprobRelease(self._engine.token_bytes)
            release.add(logprobs)
            released = release.release(generated[0], text)
            released = None if release.withheld else released
        return turn.answer(text, finish, turn.tokens_in, tokens_out, stored, released)

    @staticmethod
    def _offer(turn: Turn, structure: Structure | None) -> SamplingParams:
        """What the policy lets the model be offered (functions, the answer's grammar) and its findings."""
        if structure is None:
            return turn.params
        offered = offer(turn.policy, structure)
        turn.offered, turn.findings = offered.functions, turn.findings + offered.findings
        turn.params = dataclasses.replace(turn.params, grammar=offered.grammar)
        return turn.params

    async def _answer_calls(
        self, turn: Turn, parsed: list[ParsedCall], tokens_out: int, output_started: float
    ) -> ChatOutcome:
        """An answer that calls tools: the function rules and the argument checks, then the calls or a refusal."""
        try:
            checked = await check_calls(
                self._stage, turn.policy, parsed, turn.scope, prompt=turn.prompt, restore=turn.for_caller
            )
        except ServiceUnavailable:
            await self._audit.failed(turn)
            raise
        turn.latency["output_checks"] = elapsed_ms(output_started)
        turn.findings += checked.findings
        turn.subjects |= checked.subjects
        turn.scores += checked.scores
        turn.decision = strongest([f.action for f in turn.findings])
        stored = checked.stored if checked.stored is not None else NOT_STORED
        if turn.decision == "block":
            refusal = turn.policy.policy.refusal_message
            return turn.answer(refusal, "content_filter", turn.tokens_in, tokens_out, stored)
        return turn.answer("", "tool_calls", turn.tokens_in, tokens_out, stored, tool_calls=tuple(checked.calls))

    async def _reject(self, turn: Turn, status: int) -> None:
        """Record a request refused before generation (e.g. 429: the engine queue is full)."""
        await self._audit.write_best_effort(refusal_record(turn, outcome="rejected", status=status))
