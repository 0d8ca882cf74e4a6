"""The orchestration: policy → input checks → engine → output checks → audit commit → answer.

This is the only module that imports checks, engine and audit together. Every way a stage can fail ends in
:class:`ServiceUnavailable` (the API answers 503): nothing unchecked or unaudited is ever returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from guard.audit import AuditRecord, AuditUnavailable, AuditWriter, SubjectHasher
from guard.audit.subjects import load_or_create_key
from guard.checks import (
    CheckItem,
    CheckModels,
    CheckRegistry,
    CheckResult,
    CheckUnavailable,
    Finding,
    RequestScope,
    Stage,
)
from guard.checks.batcher import CheckBatcher
from guard.checks.injection import neutralize_control_tokens
from guard.checks.normalize import normalize
from guard.checks.pii import DEV_SPACY_MODEL, PRODUCTION_SPACY_MODEL
from guard.checks.segmenter import OutputSegmenter
from guard.engine import (
    ChatMessage,
    DeltaStream,
    Engine,
    EngineBusy,
    EngineError,
    EngineUnavailable,
    GemmaEngine,
    InvalidConversation,
    PromptTooLong,
    RemoteEngine,
    SamplingParams,
    ShieldGemmaScorer,
)
from guard.logs import decision_id_var
from guard.policy import LoadedPolicy, PolicyRegistry, strongest
from guard.policy.schema import AuditOptions
from guard.settings import DEFAULT_GENERATOR, Profile, Settings

__all__ = [
    "ChatOutcome",
    "ContextLengthExceeded",
    "EngineOverloaded",
    "Health",
    "InputTooLarge",
    "InvalidConversation",
    "InvalidParameter",
    "Models",
    "Pipeline",
    "PolicyNotFound",
    "ScanOutcome",
    "ServiceUnavailable",
    "Turn",
    "load_models",
]

logger = logging.getLogger(__name__)

# Input checks in the order they run; each key is both the policy section and the check name.
INPUT_CHECKS = ("pii", "injection", "prohibited_use")
OUTPUT_CHECKS = ("pii", "prohibited_use", "toxicity")
# PII is looked for in every message; policy rules apply to what the caller says (user and system turns).
RULE_ROLES = frozenset({"user", "system"})
DEV_MODEL_ID = "guard-dev/tiny-gemma-2"
NOT_STORED = "[not stored: the policy has no PII check for this stage]"
_CONTEXT_CHARS = 240
"""How much of a stream's released text the judging checks see before the next segment."""


class PolicyNotFound(LookupError):
    """The request names a policy that is not loaded."""


class InputTooLarge(ValueError):
    """The request's messages exceed the policy's ``limits.max_input_chars``."""


class InvalidParameter(ValueError):
    """A request parameter is out of the range this gateway serves."""


class ContextLengthExceeded(ValueError):
    """Prompt tokens plus max_tokens exceed the model's context (HTTP 400)."""


class EngineOverloaded(RuntimeError):
    """The engine's waiting queue is full (HTTP 429 with Retry-After)."""


class ServiceUnavailable(RuntimeError):
    """A check, the engine or the audit database failed: fail closed with a 503."""


@dataclass(frozen=True, slots=True)
class Models:
    """Everything loaded once at startup."""

    checks: CheckRegistry
    engine: Engine
    dev_models: list[str]


def _dev_manifest_dir(settings: Settings, name: str) -> Any:
    path = settings.dev_models_dir / name
    if not (path / "guard-dev.json").is_file():
        raise FileNotFoundError(f"dev model {name!r} not built in {path}: run `guard models build-dev`")
    return path


def load_models(settings: Settings) -> Models:
    """Load the generator and the check models for the profile, or raise with what is missing and how to fix it."""
    dev = settings.profile is Profile.DEV
    dev_models: list[str] = []
    if dev:
        spacy_model = DEV_SPACY_MODEL
        checkpoint = next(_dev_manifest_dir(settings, "toxicity").glob("*.ckpt"))
        dev_models += [f"toxicity: detoxify dev checkpoint {checkpoint}", f"pii: spaCy {spacy_model}"]
    else:
        spacy_model, checkpoint = PRODUCTION_SPACY_MODEL, None
    policies = PolicyRegistry.from_directory(settings.policy.directory, settings.policy.default).all()
    checks = CheckRegistry.load(
        CheckModels(
            spacy_model=spacy_model,
            toxicity_checkpoint=checkpoint,
            # Load every detoxify variant a policy routes to now, not on a request's path.
            toxicity_variants=tuple(
                sorted({v for p in policies if p.policy.output.toxicity for v in p.policy.output.toxicity.variants()})
            ),
            pii_hash_key=load_or_create_key(settings.home / "pii-hmac.key", settings.keys.pii_hmac),
            judge=ShieldGemmaScorer.load(settings.engine.judge.model, settings.engine.local)
            if settings.engine.judge.model
            else None,
        )
    )
    prohibited = checks["prohibited_use"]
    for loaded in policies:  # a policy whose layers cannot run (e.g. a judge without a judge model) fails startup
        for section in (loaded.policy.input.prohibited_use, loaded.policy.output.prohibited_use):
            if section is not None:
                try:
                    prohibited.validate(section)  # type: ignore[attr-defined]
                except CheckUnavailable as exc:
                    raise CheckUnavailable(f"policy {loaded.name!r}: {exc}") from None
    generator = settings.engine.model
    if generator is None:
        generator = str(_dev_manifest_dir(settings, "gemma-2")) if dev else DEFAULT_GENERATOR
    generator_is_dev = dev and settings.engine.model is None
    if generator_is_dev:
        dev_models.insert(0, f"generator: tiny Gemma-2 dev model {generator}")
    model_id = DEV_MODEL_ID if generator_is_dev else None
    engine: Engine
    if settings.engine.backend == "remote":  # only the tokenizer loads here; generation runs upstream
        engine = RemoteEngine.load(generator, settings.engine, is_dev=generator_is_dev, model_id=model_id)
    elif settings.engine.backend == "local":
        engine = GemmaEngine.load(generator, settings.engine, is_dev=generator_is_dev, model_id=model_id)
    else:
        raise EngineUnavailable(f"GUARD_ENGINE={settings.engine.backend!r} is not one of local, remote.")
    return Models(checks=checks, engine=engine, dev_models=dev_models)


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str | None = None
    tenant: str | None = None


@dataclass(slots=True)
class _Stage:
    """What one stage of checks produced for a list of texts."""

    texts: list[str]
    audit_texts: list[str | None]
    findings: list[Finding] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)
    scores: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Released:
    """What a checked stream has released so far."""

    sent: list[str] = field(default_factory=list)
    """Segments as the caller got them."""
    stored: list[str] = field(default_factory=list)
    """The same segments in their stored (redacted) form."""
    context: str = ""
    """The tail of the last released segment, judged with the next one."""
    check_ms: float = 0.0


@dataclass(slots=True)
class _Shadow:
    """A shadow policy's view of one request: its findings so far, or the error that stopped its evaluation."""

    policy: LoadedPolicy
    scope: RequestScope = field(default_factory=RequestScope)
    """Its own placeholder numbering: the shadow must not touch the request's vault."""
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None

    def record(self, active_decision: str) -> dict[str, Any]:
        """The audit row's ``shadow`` field: what the candidate would have decided, beside the active decision."""
        decision = strongest([f.action for f in self.findings])
        record: dict[str, Any] = {
            "name": self.policy.name,
            "version": self.policy.version,
            "sha256": self.policy.sha256,
            "decision": decision,
            "findings": [
                {"check": f.check, "type": f.type, "action": f.action, "stage": f.stage} for f in self.findings
            ],
            "agree": decision == active_decision and self.error is None,
        }
        if self.error is not None:
            record["error"] = self.error
        return record


@dataclass(frozen=True, slots=True)
class ChatOutcome:
    decision_id: str
    decision: str
    text: str
    finish_reason: str
    policy: LoadedPolicy
    findings: list[Finding]
    tokens_in: int
    tokens_out: int


@dataclass(slots=True)
class Turn:
    """One generation request on its way through the pipeline (a stream's two records share it)."""

    decision_id: str
    policy: LoadedPolicy
    params: SamplingParams
    started: float
    record: dict[str, Any]
    """Audit fields known after the input stage."""
    scope: RequestScope = field(default_factory=RequestScope)
    prompt: str | None = None
    """The redacted last user message (for output checks that judge the answer with its question)."""
    latency: dict[str, float] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)
    decision: str = "allow"
    tokens_in: int = 0
    deltas: DeltaStream | None = None
    """The engine's stream; ``None`` when the input stage blocked the request."""
    kind: str = "request"
    close_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    """A stream's closing record id."""
    output_audit: str | None = None
    scores: list[dict[str, Any]] = field(default_factory=list)
    outcome: ChatOutcome | None = None
    """Set when a checked stream ends."""
    checked_chars: int = 0
    """Characters of a stream's output that passed the output checks before release."""
    sent_chars: int = 0
    """Characters of a stream's output handed to the caller."""
    shadow: _Shadow | None = None
    """The policy's shadow candidate, evaluated beside it (never affecting the answer)."""

    @property
    def coverage(self) -> float:
        """The share of what was sent that was checked first (1.0 for whole answers: checked before sending)."""
        return self.checked_chars / self.sent_chars if self.sent_chars else 1.0


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    decision_id: str
    decision: str
    redacted_text: str
    policy: LoadedPolicy
    findings: list[Finding]


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


PROBE_TEXT = "What time does the library open on Saturday?"
"""The benign item each check runs in the readiness probe."""
PROBE_TTL_S = 2.0
"""How long a probe's result answers /readyz, so frequent probes don't load the checks."""


class Health:
    """Readiness of the checks and the engine, for /readyz; nothing is latched, so recovery needs no restart.

    A check is not ready while its running batch is older than the check timeout (a hung call holds its worker
    thread) or while a probe item fails or times out through its batcher. The engine is not ready while its
    worker is down or its last step failed; then a one-token generation is the probe, and its step succeeding
    clears the failure."""

    def __init__(
        self,
        batchers: dict[str, CheckBatcher],
        engine: Engine,
        probe_items: Callable[[], dict[str, CheckItem]],
        *,
        check_timeout_s: float | None,
    ) -> None:
        self.check_timeout_s = check_timeout_s
        self._batchers = batchers
        self._engine = engine
        self._probe_items = probe_items
        self._lock = asyncio.Lock()
        self._probed_at = -PROBE_TTL_S
        self._probed: dict[str, str] = {}

    async def report(self) -> dict[str, str]:
        """``{"check:<name>": state, "engine": state}``; every state is ``"ok"`` when ready."""
        async with self._lock:  # concurrent readiness calls share one probe
            if time.monotonic() - self._probed_at >= PROBE_TTL_S:
                self._probed = await self._probe()
                self._probed_at = time.monotonic()
            report = dict(self._probed)
        for name, batcher in self._batchers.items():  # a hang shows at once, whatever the cached probe said
            if self.check_timeout_s is not None and (busy := batcher.busy_for()) > self.check_timeout_s:
                report[f"check:{name}"] = f"stuck (a batch has run for {busy:.0f} s)"
        return report

    async def _probe(self) -> dict[str, str]:
        items = self._probe_items()
        names = [name for name in self._batchers if name in items]
        outcomes = await asyncio.gather(
            *(self._bounded(self._batchers[name].run([items[name]])) for name in names),
            self._engine_state(),
            return_exceptions=True,
        )
        report = {f"check:{name}": _state(outcome) for name, outcome in zip(names, outcomes, strict=False)}
        engine = outcomes[-1]
        report["engine"] = engine if isinstance(engine, str) else _state(engine)
        return report

    async def _engine_state(self) -> str:
        stats = self._engine.stats()
        if not stats.healthy:
            return "worker stopped"
        if stats.last_error is None:
            return "ok"
        prompt = self._engine.tokenize(PROBE_TEXT, add_special_tokens=True)
        try:
            await self._bounded(self._engine.generate(prompt, SamplingParams(max_tokens=1, temperature=0.0)))
        except Exception as exc:
            return f"last step failed ({stats.last_error}); probe: {type(exc).__name__}"
        return "ok"

    async def _bounded(self, call: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(call, self.check_timeout_s)


def _state(outcome: object) -> str:
    if isinstance(outcome, TimeoutError):
        return "timed out"
    if isinstance(outcome, BaseException):
        return f"failed ({type(outcome).__name__})"
    return "ok"


class Pipeline:
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
        self._hasher = hasher
        self._max_new_tokens = max_new_tokens
        # One micro-batcher (and worker thread) per check: concurrent requests' texts are checked together.
        self.batchers = {name: CheckBatcher(check) for name, check in models.checks.items()}
        self._request_timeout_s = request_timeout_s
        self.health = Health(self.batchers, models.engine, self._probe_items, check_timeout_s=check_timeout_s)

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()

    @property
    def engine(self) -> Engine:
        return self.models.engine

    def policy(self, name: str | None) -> LoadedPolicy:
        try:
            return self.policies.get(name)
        except KeyError:
            raise PolicyNotFound("unknown policy") from None

    def _probe_items(self) -> dict[str, CheckItem]:
        """A benign item per check, configured as the first loaded policy configures that check (readiness)."""
        items: dict[str, CheckItem] = {}
        for loaded in self.policies.all():
            for stage, section in (("input", loaded.policy.input), ("output", loaded.policy.output)):
                for name in self.batchers:
                    config = getattr(section, name, None)
                    if name not in items and config is not None:
                        items[name] = CheckItem(
                            text=PROBE_TEXT,
                            config=config,
                            stage=stage,  # type: ignore[arg-type]
                            scope=RequestScope(),
                            role="user" if stage == "input" else None,
                            prompt=PROBE_TEXT if stage == "output" else None,
                        )
        return items

    async def check_texts(
        self,
        names: Sequence[str],
        section: Any,
        texts: list[str],
        stage: Stage,
        scope: RequestScope,
        roles: list[str] | None = None,
        context: str = "",
        prompt: str | None = None,
    ) -> _Stage:
        """Run the configured checks of one policy section over ``texts``, all side by side on the text as sent.

        Every check sees the caller's text (so every finding's offsets index it) and they run at the same time —
        PII on one worker thread, the classifiers on theirs — so a stage costs its slowest check, not their sum.
        Afterwards PII's rewrite (placeholders) is applied and, where the injection check neutralised spelled
        control tokens, the same neutralisation is applied to the redacted text. ``context`` (a stream's last
        released text) is prepended for the judging checks only, so a sentence is judged with the one before it."""
        result = _Stage(texts=list(texts), audit_texts=[None] * len(texts))
        configured = [n for n in names if (c := getattr(section, n, None)) is not None and getattr(c, "enabled", True)]
        # Policy rules apply to what the caller says (user and system turns); assistant turns are scanned for PII only.
        ruled = [i for i in range(len(texts)) if roles is None or roles[i] in RULE_ROLES]
        judged = [context + text for text in texts] if context else texts
        runs = [
            (name, list(range(len(texts))), texts) if name == "pii" else (name, ruled, judged) for name in configured
        ]
        outcomes = await self._batched(section, runs, stage, scope, roles, prompt)
        for (name, indices, _), outputs in zip(runs, outcomes, strict=True):
            for index, output in zip(indices, outputs, strict=True):
                for finding in output.findings:
                    shifted = finding
                    if context and name != "pii":  # index the new text; a finding wholly in the context was passed
                        shifted = msgspec.structs.replace(
                            finding,
                            start=max(0, finding.start - len(context)),
                            end=max(0, finding.end - len(context)),
                        )
                    result.findings.append(_located(shifted, index, stage))
                    if name == "pii":  # the normalised value: an evasive spelling is the same subject
                        value = normalize(texts[index][finding.start : finding.end]).text
                        result.subjects.add(self._hasher.digest(finding.type, value))
                if name == "pii" and output.text is not None:
                    result.texts[index] = output.text
                    result.audit_texts[index] = _audit_copy(texts[index], output, scope)
                result.scores.extend(_scores(name, index, stage, output))
        if "injection" in configured:
            (outputs,) = [o for (n, _, _), o in zip(runs, outcomes, strict=True) if n == "injection"]
            for index, output in zip(ruled, outputs, strict=True):
                if output.text is not None and not context:  # it neutralised control tokens: so must the prompt
                    result.texts[index] = neutralize_control_tokens(result.texts[index])[0]
        return result

    def _shadow_of(self, policy: LoadedPolicy) -> _Shadow | None:
        """A fresh shadow evaluation when ``policy`` names a candidate (the registry checked that it exists)."""
        name = policy.policy.shadow
        return None if name is None else _Shadow(self.policies.get(name))

    async def _shadow_check(
        self,
        shadow: _Shadow | None,
        stage: Stage,
        texts: list[str],
        roles: list[str] | None = None,
        context: str = "",
        prompt: str | None = None,
    ) -> None:
        """The shadow policy's checks of ``stage`` over the same texts, through the same batchers. Never raises:
        a failing shadow is logged and recorded as ``shadow.error``, and the request goes on."""
        if shadow is None or shadow.error is not None:
            return
        section = shadow.policy.policy.input if stage == "input" else shadow.policy.policy.output
        names = INPUT_CHECKS if stage == "input" else OUTPUT_CHECKS
        try:
            checked = await self.check_texts(
                names, section, texts, stage, shadow.scope, roles=roles, context=context, prompt=prompt
            )
        except Exception as exc:  # whatever broke, the shadow must not fail the request
            logger.warning("shadow policy %s: %s checks failed (%s)", shadow.policy.name, stage, type(exc).__name__)
            shadow.error = f"{stage} checks failed ({type(exc).__name__})"
            return
        shadow.findings += checked.findings

    async def _batched(
        self,
        section: Any,
        runs: list[tuple[str, list[int], list[str]]],
        stage: Stage,
        scope: RequestScope,
        roles: list[str] | None,
        prompt: str | None = None,
    ) -> list[list[CheckResult]]:
        """Each check over its subset of its texts, side by side, each through its micro-batcher."""
        outcomes = await asyncio.gather(
            *(
                self._check(
                    name,
                    [
                        CheckItem(
                            text=texts[i],
                            config=getattr(section, name),
                            stage=stage,
                            scope=scope,
                            role=roles[i] if roles else None,
                            prompt=prompt,
                        )
                        for i in subset
                    ],
                )
                for name, subset, texts in runs
            ),
            return_exceptions=True,
        )
        results: list[list[CheckResult]] = []
        for (name, _, _), outcome in zip(runs, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                logger.error("check %s failed (%s)", name, type(outcome).__name__)
                if isinstance(outcome, TimeoutError):
                    raise ServiceUnavailable(f"the {name} check timed out") from None
                raise ServiceUnavailable(f"the {name} check failed ({type(outcome).__name__})") from None
            results.append(outcome)
        return results

    async def _check(self, name: str, items: list[CheckItem]) -> list[CheckResult]:
        """One check call, bounded: past the check timeout the request fails closed (its worker stays held)."""
        return await asyncio.wait_for(self.batchers[name].run(items), self.health.check_timeout_s)

    # -- generation: chat and raw completions, whole or streamed -------------------------------------------------

    async def chat(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        *,
        policy_name: str | None,
        caller: Caller,
        route: str = "/v1/chat/completions",
    ) -> ChatOutcome:
        """Answer a conversation; the one audit record is committed before this returns."""
        opened: list[Turn] = []
        async with self._deadline(route, caller, opened):
            turn = await self._open_chat(messages, params, policy_name, caller, route, opened)
            outcome = await self._output(turn)
        await self._commit(self._final_record(turn, outcome))
        return outcome

    async def complete(
        self, prompt: str, params: SamplingParams, *, policy_name: str | None, caller: Caller
    ) -> ChatOutcome:
        """Continue raw text (base models, no chat template); audited like a chat."""
        opened: list[Turn] = []
        async with self._deadline("/v1/completions", caller, opened):
            turn = await self._open_completion(prompt, params, policy_name, caller, opened)
            outcome = await self._output(turn)
        await self._commit(self._final_record(turn, outcome))
        return outcome

    async def open_stream(
        self,
        params: SamplingParams,
        *,
        policy_name: str | None,
        caller: Caller,
        messages: list[ChatMessage] | None = None,
        prompt: str | None = None,
    ) -> Turn:
        """Run the input stage, submit to the engine and commit the opening record: the stream may start.

        Everything that can refuse the request (policy, limits, context, a full queue) happens here, before any
        byte of the response is sent, so those refusals are ordinary JSON errors. The request timeout bounds
        this part: once the response has started, a stream runs until it ends or its client leaves."""
        opened: list[Turn] = []
        route = "/v1/chat/completions" if messages is not None else "/v1/completions"
        async with self._deadline(route, caller, opened):
            if messages is not None:
                turn = await self._open_chat(messages, params, policy_name, caller, route, opened)
            else:
                turn = await self._open_completion(prompt or "", params, policy_name, caller, opened)
            turn.kind = "stream_open"
            try:
                await self._commit(self._opening_record(turn))
            except ServiceUnavailable:
                if turn.deltas is not None:
                    turn.deltas.cancel()
                raise
        return turn

    @contextlib.asynccontextmanager
    async def _deadline(self, route: str, caller: Caller, opened: list[Turn]) -> AsyncIterator[None]:
        """Bound the block by the request timeout; past it, cancel the generation, audit the 503 and raise."""
        try:
            async with asyncio.timeout(self._request_timeout_s):
                yield
        except TimeoutError:
            logger.error("request on %s timed out after %s s", route, self._request_timeout_s)
            if opened:
                if opened[0].deltas is not None:
                    opened[0].deltas.cancel()  # its engine slot is freed at the next step
                await self._audit_failure(opened[0])
            else:
                await self._write_best_effort(_bare_record(route, caller, "error", 503))
            raise ServiceUnavailable("the request timed out") from None

    async def stream_checked(self, turn: Turn) -> AsyncGenerator[str, None]:
        """The generation, released segment by segment (sentences, see :mod:`guard.checks.segmenter`), each one
        through the output checks before it is yielded. A violation stops the generation: nothing of the violating
        segment is yielded and the outcome's finish reason is ``content_filter``. When the iterator ends,
        ``turn.outcome`` holds the outcome of what was sent; raises :class:`ServiceUnavailable` (audited) if the
        engine or a check fails."""
        policy = turn.policy.policy
        if turn.deltas is None:  # blocked on input: the refusal is the whole answer
            turn.outcome = self._outcome(turn, policy.refusal_message, "content_filter", 0, 0, None)
            yield policy.refusal_message
            return
        segmenter, released = OutputSegmenter(), _Released()
        finish, tokens_out, blocked = "length", 0, False
        generation_started = time.perf_counter()
        try:
            async for delta in turn.deltas:
                new_tokens = delta.tokens_out - tokens_out
                tokens_out, finish = delta.tokens_out, delta.finish_reason or finish
                for segment in segmenter.feed(delta.text, new_tokens):
                    text = await self._release(turn, released, segment)
                    if text is None:
                        blocked = True
                        break
                    yield text
                    released.sent.append(text)
                if blocked:
                    turn.deltas.cancel()  # stop generating: the slot is freed at the next engine step
                    break
            if not blocked and (rest := segmenter.flush()):
                text = await self._release(turn, released, rest)
                blocked = text is None
                if text is not None:
                    yield text
                    released.sent.append(text)
        except EngineError as exc:
            await self._audit_failure(turn)
            raise ServiceUnavailable(str(exc)) from None
        except ServiceUnavailable:
            turn.deltas.cancel()
            await self._audit_failure(turn)
            raise
        turn.sent_chars = sum(len(text) for text in released.sent)  # model output only, the refusal is ours
        if blocked and not released.sent:  # cut before anything was sent: answer with the refusal, as unstreamed
            yield policy.refusal_message
            released.sent.append(policy.refusal_message)
            released.stored.append(policy.refusal_message)
        turn.latency["generation"] = _ms(generation_started)
        turn.latency["output_checks"] = round(released.check_ms, 2)
        turn.decision = strongest([f.action for f in turn.findings])
        audit_text = "".join(released.stored) if policy.output.pii is not None else NOT_STORED
        turn.outcome = self._outcome(
            turn,
            "".join(released.sent),
            "content_filter" if blocked else finish,
            turn.tokens_in,
            tokens_out,
            audit_text,
        )

    async def _release(self, turn: Turn, released: _Released, segment: str) -> str | None:
        """The checked form of a stream's next ``segment`` as the caller gets it, or ``None`` if it violates."""
        started = time.perf_counter()
        out, _ = await asyncio.gather(
            self.check_texts(
                OUTPUT_CHECKS,
                turn.policy.policy.output,
                [segment],
                "output",
                turn.scope,
                context=released.context,
                prompt=turn.prompt,
            ),
            self._shadow_check(turn.shadow, "output", [segment], context=released.context, prompt=turn.prompt),
        )
        released.check_ms += (time.perf_counter() - started) * 1000
        offset = sum(len(text) for text in released.stored)  # findings index the stored output as a whole
        turn.findings += [msgspec.structs.replace(f, start=f.start + offset, end=f.end + offset) for f in out.findings]
        turn.subjects |= out.subjects
        turn.scores += out.scores
        if any(f.action == "block" for f in out.findings):
            return None
        released.stored.append(out.audit_texts[0] if out.audit_texts[0] is not None else out.texts[0])
        released.context = segment[-_CONTEXT_CHARS:]
        text = self._for_caller(turn, out.texts[0])
        turn.checked_chars += len(text)
        return text

    def _for_caller(self, turn: Turn, text: str) -> str:
        """The answer as the caller gets it: with this request's placeholders restored if the policy says so."""
        pii = turn.policy.policy.input.pii
        return turn.scope.restore(text) if pii is not None and pii.restore else text

    async def close_stream(self, turn: Turn, outcome: ChatOutcome) -> None:
        """Commit the closing record (raises :class:`ServiceUnavailable`; the stream then ends without [DONE])."""
        await self._commit(self._final_record(turn, outcome))

    async def abandon_stream(self, turn: Turn) -> None:
        """The client went away mid-stream: free the engine slot and record a 499 close (best effort)."""
        if turn.deltas is not None:
            turn.deltas.cancel()
        turn.latency["total"] = _ms(turn.started)
        record = self._turn_record(
            turn,
            turn.findings,
            **_answer_identity(turn),
            outcome="error",
            http_status=499,
            decision=turn.decision,
            coverage=0.0,
        )
        await self._write_best_effort(record)

    async def _open_chat(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        policy_name: str | None,
        caller: Caller,
        route: str,
        opened: list[Turn],
    ) -> Turn:
        def render(texts: list[str]) -> list[int]:
            redacted = [ChatMessage(role=m.role, content=t) for m, t in zip(messages, texts, strict=True)]
            return self.engine.tokenize(self.engine.render_chat(redacted))

        return await self._open(
            route,
            [(m.role, m.content) for m in messages],
            render,
            params,
            policy_name,
            caller,
            opened,
        )

    async def _open_completion(
        self, prompt: str, params: SamplingParams, policy_name: str | None, caller: Caller, opened: list[Turn]
    ) -> Turn:
        def render(texts: list[str]) -> list[int]:
            return self.engine.tokenize(texts[0], add_special_tokens=True)  # base models expect <bos>

        return await self._open("/v1/completions", [("prompt", prompt)], render, params, policy_name, caller, opened)

    async def _open(
        self,
        route: str,
        turns: list[tuple[str, str]],
        render: Callable[[list[str]], list[int]],
        params: SamplingParams,
        policy_name: str | None,
        caller: Caller,
        opened: list[Turn],
    ) -> Turn:
        """Limits, the input checks, then (unless blocked) the prompt and the engine submission; the turn is
        appended to ``opened`` as soon as it exists (so a timed-out request can be audited)."""
        started = time.perf_counter()
        policy = self.policy(policy_name)
        if sum(len(text) for _, text in turns) > policy.policy.limits.max_input_chars:
            raise InputTooLarge(f"the input exceeds {policy.policy.limits.max_input_chars} characters")
        if params.max_tokens > self._max_new_tokens:
            raise InvalidParameter(f"max_tokens must be at most {self._max_new_tokens}")
        record: dict[str, Any] = {
            "route": route,
            "policy_name": policy.name,
            "policy_version": policy.version,
            "policy_sha256": policy.sha256,
            "engine": self.engine.name,
            "model": self.engine.model_id,
            "model_revision": self.engine.revision,
            "key_id": caller.key_id,
            "tenant": caller.tenant,
            "prompt_hmac": self._prompt_hmac(next((t for r, t in reversed(turns) if r in ("user", "prompt")), "")),
        }
        turn = Turn(decision_id=str(uuid.uuid4()), policy=policy, params=params, started=started, record=record)
        decision_id_var.set(turn.decision_id)  # for this request's log lines
        opened.append(turn)
        stats = self.engine.stats()
        if stats.waiting >= stats.max_waiting:  # shed load before spending time on checks
            await self._reject(turn, 429)
            raise EngineOverloaded("the engine queue is full")
        texts = [text for _, text in turns]
        roles = [role for role, _ in turns]
        turn.shadow = self._shadow_of(policy)
        try:
            checked, _ = await asyncio.gather(
                self.check_texts(INPUT_CHECKS, policy.policy.input, texts, "input", turn.scope, roles=roles),
                self._shadow_check(turn.shadow, "input", texts, roles=roles),
            )
        except ServiceUnavailable:
            await self._audit_failure(turn)
            raise
        turn.scope.seal_input()
        # What an answer responds to, for output checks that judge the pair (the judge): the last user turn, redacted.
        users = [text for (role, _), text in zip(turns, checked.texts, strict=True) if role == "user"]
        turn.prompt = users[-1] if users else None
        turn.latency["input_checks"] = _ms(started)
        turn.findings, turn.subjects = list(checked.findings), set(checked.subjects)
        turn.scores = list(checked.scores)
        turn.decision = strongest([f.action for f in turn.findings])
        record["input_redacted"] = [
            {"role": role, "content": audit if audit is not None else NOT_STORED}
            for (role, _), audit in zip(turns, checked.audit_texts, strict=True)
        ]
        if turn.decision == "block":
            return turn
        prompt = render(checked.texts)
        turn.tokens_in = len(prompt)
        try:
            turn.deltas = self.engine.stream(prompt, params)
        except PromptTooLong as exc:
            raise ContextLengthExceeded(str(exc)) from None
        except EngineBusy:
            await self._reject(turn, 429)
            raise EngineOverloaded("the engine queue is full") from None
        except EngineError as exc:
            await self._audit_failure(turn)
            raise ServiceUnavailable(str(exc)) from None
        return turn

    async def _output(self, turn: Turn) -> ChatOutcome:
        """Collect the generation, run the output checks, decide; nothing is committed here."""
        policy = turn.policy.policy
        if turn.deltas is None:  # blocked on input
            return self._outcome(turn, policy.refusal_message, "content_filter", 0, 0, None)
        generation_started = time.perf_counter()
        parts: list[str] = []
        finish: str = "length"
        tokens_out = 0
        try:
            async for delta in turn.deltas:
                parts.append(delta.text)
                tokens_out, finish = delta.tokens_out, delta.finish_reason or finish
        except EngineError as exc:
            await self._audit_failure(turn)
            raise ServiceUnavailable(str(exc)) from None
        turn.latency["generation"] = _ms(generation_started)
        output_started = time.perf_counter()
        generated = ["".join(parts)]
        try:
            out, _ = await asyncio.gather(
                self.check_texts(OUTPUT_CHECKS, policy.output, generated, "output", turn.scope, prompt=turn.prompt),
                self._shadow_check(turn.shadow, "output", generated, prompt=turn.prompt),
            )
        except ServiceUnavailable:
            await self._audit_failure(turn)
            raise
        turn.latency["output_checks"] = _ms(output_started)
        turn.findings += out.findings
        turn.subjects |= out.subjects
        turn.scores += out.scores
        turn.decision = strongest([f.action for f in turn.findings])
        stored = out.audit_texts[0] if policy.output.pii is not None else NOT_STORED
        if any(f.action == "block" for f in out.findings):
            return self._outcome(turn, policy.refusal_message, "content_filter", turn.tokens_in, tokens_out, stored)
        return self._outcome(turn, self._for_caller(turn, out.texts[0]), finish, turn.tokens_in, tokens_out, stored)

    def _outcome(
        self, turn: Turn, text: str, finish: str, tokens_in: int, tokens_out: int, stored: str | None
    ) -> ChatOutcome:
        turn.output_audit = stored if stored is not None else text
        return ChatOutcome(
            decision_id=_answer_identity(turn)["decision_id"],
            decision=turn.decision,
            text=text,
            finish_reason=finish,
            policy=turn.policy,
            findings=list(turn.findings),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
        )

    def _opening_record(self, turn: Turn) -> AuditRecord:
        turn.latency["opened"] = _ms(turn.started)
        return self._turn_record(
            turn,
            turn.findings,
            decision_id=turn.decision_id,
            kind="stream_open",
            outcome="ok",
            http_status=200,
            decision=turn.decision,
            tokens_in=turn.tokens_in,
            subject_hmacs=sorted(turn.subjects),
        )

    def _final_record(self, turn: Turn, outcome: ChatOutcome) -> AuditRecord:
        """The record that answers the turn: the request's only record, or a stream's closing record."""
        turn.latency["total"] = _ms(turn.started)
        return self._turn_record(
            turn,
            outcome.findings,
            **_answer_identity(turn),
            outcome="ok",
            http_status=200,
            decision=outcome.decision,
            output_redacted=turn.output_audit,
            coverage=turn.coverage,
            tokens_in=outcome.tokens_in,
            tokens_out=outcome.tokens_out,
            subject_hmacs=sorted(turn.subjects),
        )

    def _turn_record(self, turn: Turn, findings: Sequence[Finding], **fields: Any) -> AuditRecord:
        """A record of ``turn``: its input-stage fields, ``findings`` and the latency so far, plus ``fields``."""
        record = AuditRecord(
            **turn.record,
            created_at=datetime.now(UTC),
            findings=[msgspec.to_builtins(f) for f in findings],
            scores=list(turn.scores),
            latency_ms=dict(turn.latency),
            shadow=turn.shadow.record(fields.get("decision", turn.decision)) if turn.shadow is not None else None,
            **fields,
        )
        return _as_policy_keeps(record, turn.policy.policy.audit)

    async def _write_best_effort(self, record: AuditRecord) -> None:
        """For requests that fail or are abandoned: the answer (an error) goes out whether or not this commits."""
        try:
            await self.writer.write(record)
        except AuditUnavailable:
            logger.error("audit unavailable while recording a %s %s", record.outcome, record.http_status)

    def _prompt_hmac(self, text: str) -> str | None:
        """A keyed digest of the (last) user message as sent, so reviewers can find the same prompt elsewhere."""
        return self._hasher.digest("PROMPT", text) if text.strip() else None

    async def scan(self, text: str, stage: Stage, *, policy_name: str | None, caller: Caller) -> ScanOutcome:
        started = time.perf_counter()
        policy = self.policy(policy_name)
        if len(text) > policy.policy.limits.max_input_chars:
            raise InputTooLarge(f"the text exceeds {policy.policy.limits.max_input_chars} characters")
        decision_id = str(uuid.uuid4())
        decision_id_var.set(decision_id)  # for this request's log lines
        section = policy.policy.input if stage == "input" else policy.policy.output
        names = INPUT_CHECKS if stage == "input" else OUTPUT_CHECKS
        shadow = self._shadow_of(policy)
        try:
            async with asyncio.timeout(self._request_timeout_s):
                checked, _ = await asyncio.gather(
                    self.check_texts(names, section, [text], stage, RequestScope()),
                    self._shadow_check(shadow, stage, [text]),
                )
        except (ServiceUnavailable, TimeoutError) as exc:
            failed = _bare_record("/v1/scan", caller, "error", 503, decision_id=decision_id, policy=policy)
            await self._write_best_effort(
                msgspec.structs.replace(failed, latency_ms={"total": _ms(started)}),
            )
            if isinstance(exc, TimeoutError):
                raise ServiceUnavailable("the request timed out") from None
            raise
        decision = strongest([f.action for f in checked.findings])
        stored = checked.audit_texts[0] if checked.audit_texts[0] is not None else NOT_STORED
        await self._commit(
            _as_policy_keeps(
                AuditRecord(
                    decision_id=decision_id,
                    created_at=datetime.now(UTC),
                    route="/v1/scan",
                    outcome="ok",
                    http_status=200,
                    decision=decision,
                    key_id=caller.key_id,
                    tenant=caller.tenant,
                    policy_name=policy.name,
                    policy_version=policy.version,
                    policy_sha256=policy.sha256,
                    shadow=shadow.record(decision) if shadow is not None else None,
                    findings=[msgspec.to_builtins(f) for f in checked.findings],
                    scores=checked.scores,
                    input_redacted=[{"role": stage, "content": stored}],
                    latency_ms={"checks": _ms(started), "total": _ms(started)},
                    subject_hmacs=sorted(checked.subjects),
                    prompt_hmac=self._prompt_hmac(text) if stage == "input" else None,
                    coverage=1.0,
                ),
                policy.policy.audit,
            )
        )
        return ScanOutcome(
            decision_id=decision_id,
            decision=decision,
            redacted_text=checked.texts[0],
            policy=policy,
            findings=checked.findings,
        )

    async def _commit(self, record: AuditRecord) -> None:
        try:
            await self.writer.write(record)
        except AuditUnavailable as exc:
            logger.error("audit unavailable: %s", exc)
            raise ServiceUnavailable("the audit log is unavailable") from None

    async def record_rejection(self, route: str, caller: Caller, status: int) -> None:
        """Audit a request refused before any policy ran (e.g. 403: its key may not use the policy it named)."""
        await self._write_best_effort(_bare_record(route, caller, "rejected", status))

    async def _reject(self, turn: Turn, status: int) -> None:
        """Record a request refused before generation (e.g. 429: the engine queue is full)."""
        await self._record_refusal(turn, outcome="rejected", status=status)

    async def _audit_failure(self, turn: Turn) -> None:
        """Record that a request failed closed (the 503 is sent either way)."""
        await self._record_refusal(turn, outcome="error", status=503)

    async def _record_refusal(self, turn: Turn, *, outcome: str, status: int) -> None:
        turn.latency["total"] = _ms(turn.started)
        record = self._turn_record(
            turn, turn.findings, **_answer_identity(turn), outcome=outcome, http_status=status, decision="block"
        )
        await self._write_best_effort(record)


def _bare_record(
    route: str,
    caller: Caller,
    outcome: str,
    status: int,
    *,
    decision_id: str | None = None,
    policy: LoadedPolicy | None = None,
) -> AuditRecord:
    """The record of a request refused or failed with no turn to describe it (nothing of its text is kept)."""
    return AuditRecord(
        decision_id=decision_id or str(uuid.uuid4()),
        created_at=datetime.now(UTC),
        route=route,
        outcome=outcome,
        http_status=status,
        decision="block",
        key_id=caller.key_id,
        tenant=caller.tenant,
        policy_name=policy.name if policy else None,
        policy_version=policy.version if policy else None,
        policy_sha256=policy.sha256 if policy else None,
    )


def _located(finding: Finding, index: int, stage: Stage) -> Finding:
    return msgspec.structs.replace(finding, message_index=index if stage == "input" else None)


def _scores(check: str, index: int, stage: Stage, output: CheckResult) -> list[dict[str, Any]]:
    """A check's raw scores for one text, as recorded in the audit row (empty when it reports none)."""
    if not output.scores:
        return []
    where = {"message_index": index} if stage == "input" else {}
    return [{"stage": stage, "check": check, **where, "scores": dict(output.scores)}]


def _answer_identity(turn: Turn) -> dict[str, Any]:
    """Id and kind of the record that answers ``turn`` (a stream's answer is its closing record)."""
    if turn.kind == "request":
        return {"decision_id": turn.decision_id, "kind": "request"}
    return {"decision_id": turn.close_id, "kind": "stream_close", "parent_id": turn.decision_id}


def _audit_copy(original: str, result: CheckResult, scope: RequestScope) -> str:
    """The form of a text that may be stored: every PII finding replaced, whatever its action."""
    text = original
    for finding in sorted(result.findings, key=lambda f: f.start, reverse=True):
        text = (
            text[: finding.start]
            + scope.placeholder(finding.type, original[finding.start : finding.end])
            + text[finding.end :]
        )
    return text


TEXT_NOT_KEPT = "(not stored: the policy's audit.store_text is false)"


def _as_policy_keeps(record: AuditRecord, options: AuditOptions) -> AuditRecord:
    """``record`` with what the policy's ``audit:`` options say not to keep taken out (text, raw scores)."""
    changes: dict[str, Any] = {}
    if not options.store_text:
        changes["input_redacted"] = [{**message, "content": TEXT_NOT_KEPT} for message in record.input_redacted]
        changes["output_redacted"] = None if record.output_redacted is None else TEXT_NOT_KEPT
    if not options.store_scores:
        changes["scores"] = []
    return msgspec.structs.replace(record, **changes) if changes else record
