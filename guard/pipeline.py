"""The orchestration: policy → input checks → engine → output checks → audit commit → answer.

This is the only module that imports checks, engine and audit together. Every way a stage can fail ends in
:class:`ServiceUnavailable` (the API answers 503): nothing unchecked or unaudited is ever returned.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from guard.audit import AuditRecord, AuditUnavailable, AuditWriter, SubjectHasher
from guard.checks import CheckModels, CheckRegistry, CheckResult, Finding, RequestScope, Stage
from guard.checks.pii import DEV_SPACY_MODEL, PRODUCTION_SPACY_MODEL
from guard.engine import (
    ChatMessage,
    Engine,
    EngineError,
    GemmaEngine,
    InvalidConversation,
    SamplingParams,
)
from guard.policy import LoadedPolicy, PolicyRegistry, strongest
from guard.settings import DEFAULT_GENERATOR, Profile, Settings

__all__ = [
    "ChatOutcome",
    "InputTooLarge",
    "InvalidConversation",
    "InvalidParameter",
    "Models",
    "Pipeline",
    "PolicyNotFound",
    "ScanOutcome",
    "ServiceUnavailable",
    "load_models",
]

logger = logging.getLogger(__name__)

# Input checks in the order they run; each key is both the policy section and the check name.
INPUT_CHECKS = ("pii", "prohibited_use")
OUTPUT_CHECKS = ("pii", "prohibited_use", "toxicity")
# PII is looked for in every message; policy rules apply to what the caller says (user and system turns).
RULE_ROLES = frozenset({"user", "system"})
DEV_MODEL_ID = "guard-dev/tiny-gemma-2"
NOT_STORED = "[not stored: the policy has no PII check for this stage]"


class PolicyNotFound(LookupError):
    """The request names a policy that is not loaded."""


class InputTooLarge(ValueError):
    """The request's messages exceed the policy's ``limits.max_input_chars``."""


class InvalidParameter(ValueError):
    """A request parameter is out of the range this gateway serves."""


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
    checks = CheckRegistry.load(CheckModels(spacy_model=spacy_model, toxicity_checkpoint=checkpoint))
    generator = settings.engine.model
    if generator is None:
        generator = str(_dev_manifest_dir(settings, "gemma-2")) if dev else DEFAULT_GENERATOR
    generator_is_dev = dev and settings.engine.model is None
    if generator_is_dev:
        dev_models.insert(0, f"generator: tiny Gemma-2 dev model {generator}")
    engine = GemmaEngine.load(
        generator, settings.engine, is_dev=generator_is_dev, model_id=DEV_MODEL_ID if generator_is_dev else None
    )
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


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    decision_id: str
    decision: str
    redacted_text: str
    policy: LoadedPolicy
    findings: list[Finding]


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


class Pipeline:
    def __init__(
        self,
        policies: PolicyRegistry,
        models: Models,
        writer: AuditWriter,
        hasher: SubjectHasher,
        *,
        max_new_tokens: int,
    ) -> None:
        self.policies = policies
        self.models = models
        self.writer = writer
        self._hasher = hasher
        self._max_new_tokens = max_new_tokens
        # presidio and detoxify are not documented as thread-safe: one thread runs all checks.
        self._check_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="guard-checks")

    def close(self) -> None:
        self._check_executor.shutdown(wait=False, cancel_futures=True)

    @property
    def engine(self) -> Engine:
        return self.models.engine

    def policy(self, name: str | None) -> LoadedPolicy:
        try:
            return self.policies.get(name)
        except KeyError:
            raise PolicyNotFound("unknown policy") from None

    async def _run_checks(
        self,
        names: Sequence[str],
        section: Any,
        texts: list[str],
        stage: Stage,
        scope: RequestScope,
        rule_mask: list[bool] | None = None,
    ) -> _Stage:
        """Run the configured checks of one policy section over ``texts``; PII rewrites, the others judge."""
        result = _Stage(texts=list(texts), audit_texts=[None] * len(texts))
        loop = asyncio.get_running_loop()
        for name in names:
            config = getattr(section, name)
            if config is None or not getattr(config, "enabled", True):
                continue
            indices = [i for i in range(len(texts)) if name == "pii" or rule_mask is None or rule_mask[i]]
            subset = [texts[i] for i in indices]
            check = self.models.checks[name]
            try:
                outputs: list[CheckResult] = await loop.run_in_executor(
                    self._check_executor, check.run, subset, config, stage, scope
                )
            except Exception as exc:
                logger.exception("check %s failed", name)
                raise ServiceUnavailable(f"the {name} check failed ({type(exc).__name__})") from None
            for index, output in zip(indices, outputs, strict=True):
                for finding in output.findings:
                    located = msgspec.structs.replace(finding, message_index=index if stage == "input" else None)
                    result.findings.append(located)
                    if name == "pii":
                        original = texts[index][finding.start : finding.end]
                        result.subjects.add(self._hasher.digest(finding.type, original))
                if name == "pii" and output.text is not None:
                    result.texts[index] = output.text
                    result.audit_texts[index] = _audit_copy(texts[index], output, scope)
        return result

    async def chat(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        *,
        policy_name: str | None,
        caller: Caller,
        route: str = "/v1/chat/completions",
    ) -> ChatOutcome:
        started = time.perf_counter()
        policy = self.policy(policy_name)
        if sum(len(m.content) for m in messages) > policy.policy.limits.max_input_chars:
            raise InputTooLarge(f"the messages exceed {policy.policy.limits.max_input_chars} characters")
        if params.max_tokens > self._max_new_tokens:
            raise InvalidParameter(f"max_tokens must be at most {self._max_new_tokens}")
        decision_id = str(uuid.uuid4())
        scope = RequestScope()
        latency: dict[str, float] = {}
        texts = [m.content for m in messages]
        checked = await self._run_checks(
            INPUT_CHECKS,
            policy.policy.input,
            texts,
            "input",
            scope,
            rule_mask=[m.role in RULE_ROLES for m in messages],
        )
        latency["input_checks"] = _ms(started)
        findings = list(checked.findings)
        decision = strongest([f.action for f in findings])
        stored_input = [
            {"role": m.role, "content": audit if audit is not None else NOT_STORED}
            for m, audit in zip(messages, checked.audit_texts, strict=True)
        ]
        record: dict[str, Any] = {
            "decision_id": decision_id,
            "route": route,
            "policy_name": policy.name,
            "policy_version": policy.version,
            "policy_sha256": policy.sha256,
            "engine": self.engine.name,
            "model": self.engine.model_id,
            "model_revision": self.engine.revision,
            "input_redacted": stored_input,
            "key_id": caller.key_id,
            "tenant": caller.tenant,
        }
        if decision == "block":
            text, finish, tokens_in, tokens_out, output_audit = (
                policy.policy.refusal_message,
                "content_filter",
                0,
                0,
                None,
            )
        else:
            redacted = [ChatMessage(role=m.role, content=t) for m, t in zip(messages, checked.texts, strict=True)]
            prompt = self.engine.render_chat(redacted)
            tokens_in = self.engine.count_tokens(prompt)
            if tokens_in + params.max_tokens > self.engine.context_length:
                raise InvalidConversation(
                    f"prompt ({tokens_in} tokens) plus max_tokens exceeds the model's context "
                    f"({self.engine.context_length} tokens)"
                )
            generation_started = time.perf_counter()
            try:
                generation = await self.engine.generate(prompt, params)
            except EngineError as exc:
                await self._audit_failure(record, findings, latency, started)
                raise ServiceUnavailable(str(exc)) from None
            latency["generation"] = _ms(generation_started)
            output_started = time.perf_counter()
            out = await self._run_checks(OUTPUT_CHECKS, policy.policy.output, [generation.text], "output", scope)
            latency["output_checks"] = _ms(output_started)
            findings += out.findings
            checked.subjects |= out.subjects
            decision = strongest([f.action for f in findings])
            tokens_in, tokens_out = generation.tokens_in, generation.tokens_out
            if any(f.action == "block" for f in out.findings):
                text, finish = policy.policy.refusal_message, "content_filter"
            else:
                text, finish = out.texts[0], generation.finish_reason
            output_audit = out.audit_texts[0] if policy.policy.output.pii is not None else NOT_STORED
        latency["total"] = _ms(started)
        await self._commit(
            AuditRecord(
                **record,
                created_at=datetime.now(UTC),
                outcome="ok",
                http_status=200,
                decision=decision,
                findings=[msgspec.to_builtins(f) for f in findings],
                output_redacted=output_audit if output_audit is not None else text,
                coverage=1.0,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                latency_ms=latency,
                subject_hmacs=sorted(checked.subjects),
            )
        )
        return ChatOutcome(
            decision_id=decision_id,
            decision=decision,
            text=text,
            finish_reason=finish,
            policy=policy,
            findings=findings,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
        )

    async def scan(self, text: str, stage: Stage, *, policy_name: str | None, caller: Caller) -> ScanOutcome:
        started = time.perf_counter()
        policy = self.policy(policy_name)
        if len(text) > policy.policy.limits.max_input_chars:
            raise InputTooLarge(f"the text exceeds {policy.policy.limits.max_input_chars} characters")
        decision_id = str(uuid.uuid4())
        section = policy.policy.input if stage == "input" else policy.policy.output
        names = INPUT_CHECKS if stage == "input" else OUTPUT_CHECKS
        checked = await self._run_checks(names, section, [text], stage, RequestScope())
        decision = strongest([f.action for f in checked.findings])
        stored = checked.audit_texts[0] if checked.audit_texts[0] is not None else NOT_STORED
        await self._commit(
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
                findings=[msgspec.to_builtins(f) for f in checked.findings],
                input_redacted=[{"role": stage, "content": stored}],
                latency_ms={"checks": _ms(started), "total": _ms(started)},
                subject_hmacs=sorted(checked.subjects),
                coverage=1.0,
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

    async def _audit_failure(
        self, record: dict[str, Any], findings: list[Finding], latency: dict[str, float], started: float
    ) -> None:
        """Best effort: record that a request failed closed (the 503 is sent either way)."""
        latency["total"] = _ms(started)
        try:
            await self.writer.write(
                AuditRecord(
                    **record,
                    created_at=datetime.now(UTC),
                    outcome="error",
                    http_status=503,
                    decision="block",
                    findings=[msgspec.to_builtins(f) for f in findings],
                    latency_ms=latency,
                )
            )
        except AuditUnavailable:
            logger.error("audit unavailable while recording a failed request")


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
