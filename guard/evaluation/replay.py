"""Replay (``guard policy replay``): stored decisions re-evaluated under a candidate policy, and the flips counted.

Replay reads only what the audit row holds: redacted messages (placeholders, never raw PII), the redacted output
and the checks' stored scores. It never needs raw text, so some layers see a slightly different text than they did
live (``<PERSON_1>`` for a name); toxicity thresholds are compared with the stored scores, which were taken on the
original text.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from typing import Any

import msgspec

from guard.checks import Finding, RequestScope
from guard.evaluation.runner import UNSTORED_TEXT, CheckRunner
from guard.evaluation.stored import ARROW, add, blocking_types, new_group
from guard.policy import LoadedPolicy, strongest

__all__ = ["alone", "flip_report", "replay_all", "replay_decision"]


def alone(candidate: LoadedPolicy) -> LoadedPolicy:
    """``candidate`` without its shadow: a candidate is evaluated alone, its own shadow plays no part in a replay."""
    return dataclasses.replace(candidate, policy=msgspec.structs.replace(candidate.policy, shadow=None))


def _stored_scores(row: dict[str, Any], check: str, stage: str) -> dict[str, float]:
    """The highest stored score per name of ``check`` at ``stage`` (a stream has one entry per segment)."""
    best: dict[str, float] = {}
    for entry in row.get("scores") or []:
        if entry.get("check") == check and entry.get("stage") == stage:
            for name, value in entry["scores"].items():
                best[name] = max(value, best.get(name, 0.0))
    return best


def _toxicity_from_scores(config: Any, scores: dict[str, float]) -> list[dict[str, Any]]:
    return [
        {"check": "toxicity", "type": label, "action": config.action, "stage": "output", "detail": "stored score"}
        for label, threshold in config.thresholds.items()
        if scores.get(label, 0.0) >= threshold
    ]


def _pii_from_findings(policy: Any, stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The candidate's PII findings for what the active policy found (and replaced by placeholders in the stored
    text): each stored PII finding whose entity the candidate's section lists, at or above its threshold there."""
    found = []
    for finding in stored:
        if finding["check"] != "pii":
            continue
        section = (policy.input if finding["stage"] == "input" else policy.output).pii
        if section is None or not section.enabled or finding["type"] not in section.entities:
            continue
        rule = section.rule(finding["type"])
        threshold = rule.threshold if rule.threshold is not None else section.score_threshold
        if rule.action != "allow" and finding["score"] >= threshold:
            found.append({"check": "pii", "type": finding["type"], "action": rule.action, "stage": finding["stage"]})
    return found


async def replay_decision(runner: CheckRunner, candidate: LoadedPolicy, row: dict[str, Any]) -> dict[str, Any]:
    """The candidate's decision on one stored decision, from its redacted texts and stored scores."""
    policy, scope = candidate.policy, RequestScope()
    # PII the active policy found is a placeholder in the stored text: its stored finding stands in for the value.
    # The candidate's own PII check still reads the stored text, for entities the active policy left in place.
    found: list[dict[str, Any]] = _pii_from_findings(policy, row["findings"])

    def keep(findings: list[Finding]) -> None:
        found.extend({"check": f.check, "type": f.type, "action": f.action, "stage": f.stage} for f in findings)

    messages = [m for m in row["input_redacted"] if m["content"] not in UNSTORED_TEXT]
    if row["route"] == "/v1/scan":  # one text; its "role" is the stage it was scanned as
        for message in messages:
            text = [message["content"]]
            if message["role"] == "output":
                keep((await runner.run("output", policy.output, text, scope)).findings)
            else:
                keep((await runner.run("input", policy.input, text, scope)).findings)
        return _replayed(row, found, strongest([f["action"] for f in found]), output_replayed=False)
    if messages:
        texts, roles = [m["content"] for m in messages], [m["role"] for m in messages]
        keep((await runner.run("input", policy.input, texts, scope, roles=roles)).findings)
    # The output exists only if the active policy let the request through its input stage; a blocked stream
    # stored what it sent, not the segment that was cut.
    stored_findings = row["findings"]
    input_blocked = any(f["stage"] == "input" and f["action"] == "block" for f in stored_findings)
    cut_stream = row["kind"] == "stream_close" and any(
        f["stage"] == "output" and f["action"] == "block" for f in stored_findings
    )
    output_text = row["output_redacted"]
    output_replayed = not input_blocked and not cut_stream and output_text not in (None, *UNSTORED_TEXT)
    section = policy.output
    if section.toxicity is not None and section.toxicity.enabled and not input_blocked:
        scores = _stored_scores(row, "toxicity", "output")
        if scores and set(section.toxicity.thresholds) <= set(scores):  # the stored scores decide it
            found += _toxicity_from_scores(section.toxicity, scores)
            section = msgspec.structs.replace(section, toxicity=None)
    if output_replayed:
        users = [m["content"] for m in messages if m["role"] == "user"]
        out = await runner.run("output", section, [output_text], scope, prompt=users[-1] if users else None)
        keep(out.findings)
    return _replayed(row, found, strongest([f["action"] for f in found]), output_replayed=output_replayed)


def _replayed(
    row: dict[str, Any], found: list[dict[str, Any]], decision: str, *, output_replayed: bool
) -> dict[str, Any]:
    return {
        "decision_id": row["decision_id"],
        "created_at": str(row["created_at"]),
        "key_id": row["key_id"],
        "active": row["decision"],
        "candidate": decision,
        "active_blocks": blocking_types(row["findings"]),
        "candidate_blocks": blocking_types(found),
        "output_replayed": output_replayed,
    }


async def replay_all(runner: CheckRunner, candidate: LoadedPolicy, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`replay_decision` over every row, side by side, so the checks' micro-batchers batch the texts of many
    stored decisions together."""
    return list(await asyncio.gather(*(replay_decision(runner, candidate, row) for row in rows)))


def flip_report(replayed: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of changed decisions: every (active -> candidate) pair, and what became or stopped being blocked, per
    category (the blocking finding's type) and per key, each with example decision ids."""
    pairs: defaultdict[str, dict[str, Any]] = defaultdict(new_group)
    sides: dict[str, dict[str, defaultdict[str, dict[str, Any]]]] = {
        side: {"by_category": defaultdict(new_group), "by_key": defaultdict(new_group)}
        for side in ("newly_blocked", "no_longer_blocked")
    }
    for item in replayed:
        active, candidate = item["active"], item["candidate"]
        if active == candidate:
            continue
        add(pairs[f"{active}{ARROW}{candidate}"], item["decision_id"])
        if (active == "block") == (candidate == "block"):
            continue
        side = "newly_blocked" if candidate == "block" else "no_longer_blocked"
        categories = item["candidate_blocks"] if candidate == "block" else item["active_blocks"]
        for category in categories or ["(none recorded)"]:
            add(sides[side]["by_category"][category], item["decision_id"])
        add(sides[side]["by_key"][item["key_id"] or "(no key)"], item["decision_id"])
    return {
        "rows": len(replayed),
        "changed": sum(group["count"] for group in pairs.values()),
        "allow_to_block": sum(g["count"] for p, g in pairs.items() if p.endswith(f"{ARROW}block")),
        "block_to_allow": sum(g["count"] for p, g in pairs.items() if p.startswith(f"block{ARROW}")),
        "output_not_replayed": sum(not item["output_replayed"] for item in replayed),
        "pairs": dict(sorted(pairs.items())),
        **{side: {k: dict(sorted(v.items())) for k, v in groups.items()} for side, groups in sides.items()},
    }
