"""Run one policy section's checks over texts from many requests, with the policy's shadow candidate beside it.

Each check has its own micro-batcher (and worker thread), so the texts of concurrent requests are checked together
and a stage costs its slowest check, not the sum. Every check sees the caller's text as sent, so every finding's
offsets index it. A check whose rewrite is a redaction (``redacts`` in :mod:`guard.checks.base`: PII, secrets) sees
every message, its rewrite becomes the text for what follows (the prompt, the answer) and the stored copy replaces
every finding with its placeholder (the rewrites of several redacting checks are combined, an overlap becoming one
span); the other checks apply the policy's rules to what the caller says (user and system
turns), and, in a stream, judge each segment with the end of the text released before it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from guard.audit import SubjectHasher
from guard.checks import Check, CheckItem, CheckResult, Finding, RequestScope, Stage
from guard.checks.base import redacts, subject_value
from guard.checks.batcher import CheckBatcher
from guard.checks.injection import neutralize_control_tokens
from guard.pipeline.errors import ServiceUnavailable
from guard.policy import LoadedPolicy, PolicyRegistry

__all__ = ["INPUT_CHECKS", "OUTPUT_CHECKS", "RULE_ROLES", "CheckStage", "Checked", "Shadow", "configured_checks"]

logger = logging.getLogger(__name__)

# The checks of each stage in the order they run; each name is both the policy section and the check.
INPUT_CHECKS = ("pii", "secrets", "injection", "prohibited_use")
OUTPUT_CHECKS = ("pii", "secrets", "prohibited_use", "toxicity")
RULE_ROLES = frozenset({"user", "system"})
"""Whose messages the policy's rules apply to; assistant turns are looked at by the redacting checks only."""


@dataclass(slots=True)
class Checked:
    """What one section's checks produced for a list of texts."""

    texts: list[str]
    """Each text with the checks' rewrites (placeholders, neutralised control tokens): what goes on."""
    audit_texts: list[str | None]
    """The form of each text that may be stored (``None``: the section has no redacting check)."""
    findings: list[Finding] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)
    scores: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Shadow:
    """A shadow policy's view of one request: its findings so far, or the error that stopped its evaluation."""

    policy: LoadedPolicy
    scope: RequestScope = field(default_factory=RequestScope)
    """Its own placeholder numbering: the shadow must not touch the request's vault."""
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def of(cls, policy: LoadedPolicy, policies: PolicyRegistry) -> Shadow | None:
        """A fresh shadow evaluation when ``policy`` names a candidate (the registry checked that it exists)."""
        name = policy.policy.shadow
        return None if name is None else cls(policies.get(name))


@dataclass(frozen=True, slots=True)
class _Run:
    """One check over the texts it sees."""

    name: str
    redacts: bool
    indices: list[int]
    texts: list[str]


def checks_of(stage: Stage) -> tuple[str, ...]:
    """The checks a policy section of ``stage`` may configure, in the order they run."""
    return INPUT_CHECKS if stage == "input" else OUTPUT_CHECKS


def section_of(policy: LoadedPolicy, stage: Stage) -> Any:
    """The policy's section for ``stage``."""
    return policy.policy.input if stage == "input" else policy.policy.output


def _configured(names: Sequence[str], section: Any) -> list[str]:
    """The checks of ``names`` that ``section`` configures and has not disabled, in order."""
    return [n for n in names if (c := getattr(section, n, None)) is not None and getattr(c, "enabled", True)]


def configured_checks(policy: LoadedPolicy, stage: Stage) -> tuple[str, ...]:
    """The checks ``policy``'s section for ``stage`` runs, in the order they run."""
    return tuple(_configured(checks_of(stage), section_of(policy, stage)))


class CheckStage:
    """The checks, each behind its micro-batcher; ``check_timeout_s`` bounds each check call (queueing included),
    ``None`` (offline tools replaying many texts at once) leaves it unbounded. Without a ``hasher`` no subject
    digests are computed."""

    def __init__(
        self, checks: Mapping[str, Check], hasher: SubjectHasher | None = None, *, check_timeout_s: float | None = None
    ) -> None:
        self.batchers = {name: CheckBatcher(check) for name, check in checks.items()}
        self.check_timeout_s = check_timeout_s
        self._hasher = hasher
        self._redacting = frozenset(name for name, check in checks.items() if redacts(check))

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()

    async def run(
        self,
        policy: LoadedPolicy,
        stage: Stage,
        texts: list[str],
        scope: RequestScope,
        *,
        shadow: Shadow | None = None,
        roles: list[str] | None = None,
        context: str = "",
        prompt: str | None = None,
    ) -> Checked:
        """``policy``'s section for ``stage`` over ``texts``, and the ``shadow`` candidate's beside it (whose
        findings go to ``shadow``; it never fails the request). Raises :class:`ServiceUnavailable` if a check
        fails or times out."""
        checked, _ = await asyncio.gather(
            self.run_section(
                checks_of(stage), section_of(policy, stage), texts, stage, scope, roles, context=context, prompt=prompt
            ),
            self._run_shadow(shadow, stage, texts, roles=roles, context=context, prompt=prompt),
        )
        return checked

    async def run_section(
        self,
        names: Sequence[str],
        section: Any,
        texts: list[str],
        stage: Stage,
        scope: RequestScope,
        roles: list[str] | None = None,
        context: str = "",
        prompt: str | None = None,
    ) -> Checked:
        """Run the configured checks ``names`` of one policy section over ``texts``, all side by side.

        ``context`` (a stream's last released text) is prepended for the rule checks only, so a sentence is judged
        with the one before it; their findings are shifted back to index the new text. Where a check rewrote a text
        without redacting it (the injection check neutralising spelled control tokens), the neutralisation is made
        again on the redacted text, so that both apply."""
        result = Checked(texts=list(texts), audit_texts=[None] * len(texts))
        configured = _configured(names, section)
        everything = list(range(len(texts)))
        ruled = [i for i in everything if roles is None or roles[i] in RULE_ROLES]
        judged = [context + text for text in texts] if context else texts
        runs = [
            _Run(name, True, everything, texts) if name in self._redacting else _Run(name, False, ruled, judged)
            for name in configured
        ]
        outcomes = await self._batched(section, runs, stage, scope, roles, prompt)
        rewritten: set[int] = set()
        redactions: dict[int, list[CheckResult]] = {}
        for run, outputs in zip(runs, outcomes, strict=True):
            for index, output in zip(run.indices, outputs, strict=True):
                self._collect(result, run, index, output, texts[index], stage, scope, context)
                if output.text is not None and not run.redacts and not context:
                    rewritten.add(index)
                if run.redacts and output.text is not None:
                    redactions.setdefault(index, []).append(output)
        for index, outputs in redactions.items():
            result.texts[index] = _redacted(texts[index], outputs)
            result.audit_texts[index] = _stored_copy(texts[index], outputs, scope)
        for index in sorted(rewritten):
            result.texts[index] = neutralize_control_tokens(result.texts[index])[0]
        return result

    def _collect(
        self,
        result: Checked,
        run: _Run,
        index: int,
        output: CheckResult,
        original: str,
        stage: Stage,
        scope: RequestScope,
        context: str,
    ) -> None:
        """Add one check's result for text ``index`` to ``result``."""
        for finding in output.findings:
            shifted = finding
            if context and not run.redacts:  # index the new text; a finding wholly in the context was passed
                shifted = msgspec.structs.replace(
                    finding, start=max(0, finding.start - len(context)), end=max(0, finding.end - len(context))
                )
            result.findings.append(msgspec.structs.replace(shifted, message_index=index if stage == "input" else None))
            if run.redacts and self._hasher is not None:
                value = subject_value(original[finding.start : finding.end])
                result.subjects.add(self._hasher.digest(finding.type, value))
        if output.scores:
            where = {"message_index": index} if stage == "input" else {}
            result.scores.append({"stage": stage, "check": run.name, **where, "scores": dict(output.scores)})

    async def _run_shadow(
        self,
        shadow: Shadow | None,
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
        try:
            checked = await self.run_section(
                checks_of(stage),
                section_of(shadow.policy, stage),
                texts,
                stage,
                shadow.scope,
                roles=roles,
                context=context,
                prompt=prompt,
            )
        except Exception as exc:  # whatever broke, the shadow must not fail the request
            logger.warning("shadow policy %s: %s checks failed (%s)", shadow.policy.name, stage, type(exc).__name__)
            shadow.error = f"{stage} checks failed ({type(exc).__name__})"
            return
        shadow.findings += checked.findings

    async def _batched(
        self,
        section: Any,
        runs: list[_Run],
        stage: Stage,
        scope: RequestScope,
        roles: list[str] | None,
        prompt: str | None = None,
    ) -> list[list[CheckResult]]:
        """Each check over its subset of its texts, side by side, each through its micro-batcher."""
        outcomes = await asyncio.gather(
            *(
                self._check(
                    run.name,
                    [
                        CheckItem(
                            text=run.texts[i],
                            config=getattr(section, run.name),
                            stage=stage,
                            scope=scope,
                            role=roles[i] if roles else None,
                            prompt=prompt,
                        )
                        for i in run.indices
                    ],
                )
                for run in runs
            ),
            return_exceptions=True,
        )
        results: list[list[CheckResult]] = []
        for run, outcome in zip(runs, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                logger.error("check %s failed (%s)", run.name, type(outcome).__name__)
                if isinstance(outcome, TimeoutError):
                    raise ServiceUnavailable(f"the {run.name} check timed out") from None
                raise ServiceUnavailable(f"the {run.name} check failed ({type(outcome).__name__})") from None
            results.append(outcome)
        return results

    async def _check(self, name: str, items: list[CheckItem]) -> list[CheckResult]:
        """One check call, bounded: past the check timeout the request fails closed (its worker stays held)."""
        return await asyncio.wait_for(self.batchers[name].run(items), self.check_timeout_s)


def _spans_joined(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """(start, end, payload) spans with overlaps joined into their union, keeping the longest one's payload."""
    joined: list[tuple[int, int, str]] = []
    for start, end, payload in sorted(spans, key=lambda s: (s[0], -s[1])):
        if joined and start < joined[-1][1]:
            last_start, last_end, last_payload = joined[-1]
            longest = payload if end - start > last_end - last_start else last_payload
            joined[-1] = (last_start, max(last_end, end), longest)
        else:
            joined.append((start, end, payload))
    return joined


def _redacted(original: str, outputs: list[CheckResult]) -> str:
    """The text that goes on: one redacting check's rewrite, or the rewrites of several combined over ``original``
    (overlapping rewrites become one, with the longer replacement)."""
    if len(outputs) == 1 and outputs[0].text is not None:
        return outputs[0].text
    rewrites = _spans_joined([(r.start, r.end, r.text) for output in outputs for r in output.rewrites])
    text = original
    for start, end, replacement in reversed(rewrites):
        text = text[:start] + replacement + text[end:]
    return text


def _stored_copy(original: str, outputs: list[CheckResult], scope: RequestScope) -> str:
    """The form of a text that may be stored: every finding of every redaction replaced, whatever its action
    (overlapping findings of two checks are replaced as one span)."""
    spans = _spans_joined([(f.start, f.end, f.type) for output in outputs for f in output.findings])
    text = original
    for start, end, kind in reversed(spans):
        text = text[:start] + scope.placeholder(kind, original[start:end]) + text[end:]
    return text
