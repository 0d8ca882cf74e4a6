"""Guarded tool calls and structured answers: what a request constrains its answer to, which functions the policy
lets the model call, and the checks on the calls it generates before the caller sees them.

- Offer: functions the policy's ``tools:`` section does not permit are not offered to the model (a ``flag``
  finding records each); a ``tool_choice`` that names one, or ``required`` with none left, blocks the request.
- Calls: a call of a function the policy does not permit blocks the answer (the in-process engine cannot make one:
  its grammar holds only the offered functions). Every string value of the generated arguments goes through the
  argument checks (PII, secrets, prohibited use); a redaction rewrites the value inside the JSON, a ``block`` refuses
  the answer. Each finding names the call (``tool_call``) and the argument (``path``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from guard.checks import Finding, RequestScope
from guard.engine.grammar import json_schema_grammar
from guard.engine.tool_format import FunctionSpec, ParsedCall, format_calls, tool_call_grammar
from guard.pipeline.stage import CheckStage
from guard.policy import LoadedPolicy

__all__ = ["ARGUMENT_CHECKS", "CheckedCalls", "Structure", "ToolCallOut", "ToolRequest", "check_calls", "offer"]

ARGUMENT_CHECKS = ("pii", "secrets", "prohibited_use")


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """The functions a request offers and how the model may use them (``choice``: ``none``, ``auto``,
    ``required`` or a function name)."""

    functions: tuple[FunctionSpec, ...]
    choice: str = "auto"
    parallel: bool = True


@dataclass(frozen=True, slots=True)
class Structure:
    """What constrains a request's answer: tools, a JSON Schema (``response_format``), or both."""

    tools: ToolRequest | None = None
    json_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolCallOut:
    """A checked call as the caller gets it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Offer:
    """The functions offered to the model, the grammar of the answer, and the findings of the policy's choice."""

    functions: tuple[FunctionSpec, ...]
    grammar: str | None
    findings: list[Finding]


def _finding(
    name_action: str, *, stage: str, detail: str, tool_call: str | None = None, path: str | None = None
) -> Finding:
    return Finding(
        check="tools",
        type="DENIED_FUNCTION",
        score=1.0,
        threshold=1.0,
        action=name_action,  # type: ignore[arg-type]
        start=0,
        end=0,
        stage=stage,  # type: ignore[arg-type]
        detail=detail,
        tool_call=tool_call,
        path="function.name" if tool_call else path,
    )


def offer(policy: LoadedPolicy, structure: Structure) -> Offer:
    """What the model is offered under ``policy`` and the grammar its answer must match."""
    tools = structure.tools
    rules = policy.policy.tools
    if tools is None or tools.choice == "none":
        grammar = json_schema_grammar(structure.json_schema) if structure.json_schema is not None else None
        return Offer((), grammar, [])
    offered = tuple(f for f in tools.functions if rules.permits(f.name))
    findings = [
        _finding("flag", stage="input", detail="not offered to the model", path=f"tools.{index}")
        for index, f in enumerate(tools.functions)
        if not rules.permits(f.name)
    ]
    named = tools.choice not in ("auto", "required")
    if (named and not any(f.name == tools.choice for f in offered)) or (tools.choice == "required" and not offered):
        why = "tool_choice needs a function the policy denies"
        findings.append(_finding("block", stage="input", detail=why, path="tool_choice"))
        return Offer(offered, None, findings)
    if not offered:
        grammar = json_schema_grammar(structure.json_schema) if structure.json_schema is not None else None
        return Offer((), grammar, findings)
    grammar = tool_call_grammar(offered, tools.choice, parallel=tools.parallel, answer_schema=structure.json_schema)
    return Offer(offered, grammar, findings)


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """``(path, string)`` for every string in a JSON value (object keys are schema-defined and not checked)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")


def _replaced(value: Any, path: str, values: Mapping[str, str]) -> Any:
    """``value`` with the strings at ``values``' paths replaced."""
    if isinstance(value, str):
        return values.get(path, value)
    if isinstance(value, dict):
        return {key: _replaced(item, f"{path}.{key}", values) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, f"{path}[{index}]", values) for index, item in enumerate(value)]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


@dataclass(slots=True)
class CheckedCalls:
    """The calls after the checks: for the model's caller (placeholders of the caller's own values restored where
    the policy says so), the stored form, and the findings."""

    calls: list[ToolCallOut]
    stored: str | None
    """The calls as stored: each value in its redacted stored form; ``None`` when some value was seen by no
    redacting check (nothing unredacted is stored)."""
    findings: list[Finding] = dataclasses.field(default_factory=list)
    subjects: set[str] = dataclasses.field(default_factory=set)
    scores: list[dict[str, Any]] = dataclasses.field(default_factory=list)


async def check_calls(
    stage: CheckStage,
    policy: LoadedPolicy,
    parsed: list[ParsedCall],
    scope: RequestScope,
    *,
    prompt: str | None,
    restore: Any,
) -> CheckedCalls:
    """Run the policy's function rules and argument checks on generated calls; ``restore`` puts the caller's own
    values back in place of their placeholders (or leaves the text alone)."""
    rules = policy.policy.tools
    section = rules.argument_checks(policy.policy.output)
    ids = [f"call_{uuid.uuid4().hex[:24]}" for _ in parsed]
    findings = [
        _finding("block", stage="output", detail="generated call of a denied function", tool_call=call_id)
        for call_id, call in zip(ids, parsed, strict=True)
        if not rules.permits(call.name)
    ]
    arguments = [json.loads(call.arguments) for call in parsed]
    leaves = [(n, path, text) for n, value in enumerate(arguments) for path, text in _leaves(value, "arguments")]
    # One section run per value, side by side (the checks' micro-batchers join them): each finding is then known
    # to be of its value, whose offsets it indexes.
    runs = await asyncio.gather(
        *(stage.run_section(ARGUMENT_CHECKS, section, [text], "output", scope, prompt=prompt) for _, _, text in leaves)
    )
    result = CheckedCalls([], None, findings)
    texts, audits = [], []
    for (number, path, _), run in zip(leaves, runs, strict=True):
        result.findings += [msgspec.structs.replace(f, tool_call=ids[number], path=path) for f in run.findings]
        result.subjects |= run.subjects
        result.scores += [{**score, "tool_call": ids[number], "path": path} for score in run.scores]
        texts.append(run.texts[0])
        audits.append(run.audit_texts[0])
    redacted: list[dict[str, str]] = [{} for _ in parsed]
    stored: list[dict[str, str]] = [{} for _ in parsed]
    for (number, path, _), text, audit in zip(leaves, texts, audits, strict=True):
        redacted[number][path] = restore(text)
        stored[number][path] = audit if audit is not None else text
    result.calls = [
        ToolCallOut(call_id, call.name, _dumps(_replaced(value, "arguments", redacted[number])))
        for number, (call_id, call, value) in enumerate(zip(ids, parsed, arguments, strict=True))
    ]
    pairs = zip(parsed, arguments, strict=True)
    if any(audit is None for audit in audits):
        return result
    result.stored = format_calls(
        [(call.name, _dumps(_replaced(value, "arguments", stored[n]))) for n, (call, value) in enumerate(pairs)]
    )
    return result
