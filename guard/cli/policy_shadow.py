"""``guard policy shadow-report`` and ``guard policy replay``: what a candidate policy would change, measured on
the traffic the audit log recorded (shadow decisions taken live, or stored decisions re-evaluated now).

Replay reads only what the audit row holds: redacted messages (placeholders, never raw PII), the redacted output
and the checks' stored scores. It never needs raw text, so some layers see a slightly different text than they did
live (``<PERSON_1>`` for a name); toxicity thresholds are compared with the stored scores, which were taken on the
original text."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from guard.cli.common import fail, settings

if TYPE_CHECKING:
    from guard.pipeline import Pipeline
    from guard.policy import LoadedPolicy

__all__ = ["flip_report", "replay", "replay_decision", "shadow_report", "shadow_summary"]

EXAMPLES = 5
"""Example decision ids kept per group."""
_ARROW = "->"


def _when(value: str | None) -> datetime | None:
    """An ISO-8601 instant; one without a zone is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"not an ISO-8601 date or time: {value!r}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


async def _read(since: datetime | None, until: datetime | None, policy: str | None, *, with_shadow: bool) -> Any:
    from guard.audit import create_engine
    from guard.audit.replay_queries import answered_decisions

    engine = create_engine(settings().database.url)
    try:
        return await answered_decisions(engine, since=since, until=until, policy=policy, with_shadow=with_shadow)
    finally:
        await engine.dispose()


def _group() -> dict[str, Any]:
    return {"count": 0, "decision_ids": []}


def _add(group: dict[str, Any], decision_id: str) -> None:
    group["count"] += 1
    if len(group["decision_ids"]) < EXAMPLES:
        group["decision_ids"].append(decision_id)


def _blocking_types(findings: list[dict[str, Any]]) -> list[str]:
    """The finding types (prohibited categories, toxicity labels, entities...) that blocked, each once."""
    return sorted({f["type"] for f in findings if f["action"] == "block"})


# -- shadow-report ---------------------------------------------------------------------------------------------------


def shadow_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How often the shadow candidate agreed with the active policy, and where they differed."""
    pairs: defaultdict[str, dict[str, Any]] = defaultdict(_group)
    differing: Counter[str] = Counter()
    agreed = errors = 0
    for row in rows:
        shadow = row["shadow"]
        agreed += bool(shadow.get("agree"))
        errors += "error" in shadow
        _add(pairs[f"{row['decision']}{_ARROW}{shadow['decision']}"], row["decision_id"])
        if not shadow.get("agree"):
            active = {(f["check"], f["type"], f["action"]) for f in row["findings"]}
            candidate = {(f["check"], f["type"], f["action"]) for f in shadow["findings"]}
            differing.update(f"shadow only: {c}/{t} ({a})" for c, t, a in candidate - active)
            differing.update(f"active only: {c}/{t} ({a})" for c, t, a in active - candidate)
    return {
        "rows": len(rows),
        "agreed": agreed,
        "agreement_rate": agreed / len(rows) if rows else None,
        "shadow_errors": errors,
        "shadows": sorted({f"{r['shadow']['name']} {r['shadow']['version']}" for r in rows}),
        "pairs": dict(sorted(pairs.items(), key=lambda item: -item[1]["count"])),
        "top_differences": differing.most_common(10),
    }


def _print_shadow(summary: dict[str, Any]) -> None:
    console = Console()
    if not summary["rows"]:
        console.print("no decisions with a shadow evaluation in that range")
        return
    console.print(
        f"{summary['rows']} decisions with a shadow ({', '.join(summary['shadows'])}): "
        f"agreement {summary['agreement_rate']:.1%} ({summary['agreed']}), shadow errors {summary['shadow_errors']}",
        highlight=False,
    )
    console.print(_pairs_table("active -> shadow decisions", "active -> shadow", summary["pairs"]))
    if summary["top_differences"]:
        diffs = Table(title="top differing findings (disagreeing decisions)")
        diffs.add_column("finding (check/type, action)")
        diffs.add_column("decisions")
        for finding, count in summary["top_differences"]:
            diffs.add_row(finding, str(count))
        console.print(diffs)


@click.command("shadow-report")
@click.option("--since", help="ISO-8601 start (inclusive; UTC unless a zone is given).")
@click.option("--until", help="ISO-8601 end (exclusive).")
@click.option("--policy", "policy_name", help="Only decisions taken under this (active) policy.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write it as JSON.")
def shadow_report(since: str | None, until: str | None, policy_name: str | None, json_out: Path | None) -> None:
    """Summarise shadow evaluations in the audit log (GUARD_DATABASE_URL): agreement and where they differ."""
    rows = asyncio.run(_read(_when(since), _when(until), policy_name, with_shadow=True))
    summary = shadow_summary(rows)
    _print_shadow(summary)
    if json_out is not None:
        json_out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


# -- replay ----------------------------------------------------------------------------------------------------------


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


async def replay_decision(pipeline: Pipeline, candidate: LoadedPolicy, row: dict[str, Any]) -> dict[str, Any]:
    """The candidate's decision on one stored decision, from its redacted texts and stored scores."""
    from guard.checks import RequestScope
    from guard.pipeline import INPUT_CHECKS, NOT_STORED, OUTPUT_CHECKS, TEXT_NOT_KEPT
    from guard.policy import strongest

    policy, scope = candidate.policy, RequestScope()
    # PII the active policy found is a placeholder in the stored text: its stored finding stands in for the value.
    # The candidate's own PII check still reads the stored text, for entities the active policy left in place.
    found: list[dict[str, Any]] = _pii_from_findings(policy, row["findings"])

    def keep(findings: Any) -> None:
        found.extend({"check": f.check, "type": f.type, "action": f.action, "stage": f.stage} for f in findings)

    unstored = (NOT_STORED, TEXT_NOT_KEPT)  # markers of text the active policy did not keep
    messages = [m for m in row["input_redacted"] if m["content"] not in unstored]
    if row["route"] == "/v1/scan":  # one text; its "role" is the stage it was scanned as
        for message in messages:
            text = [message["content"]]
            if message["role"] == "output":
                keep((await pipeline.check_texts(OUTPUT_CHECKS, policy.output, text, "output", scope)).findings)
            else:
                keep((await pipeline.check_texts(INPUT_CHECKS, policy.input, text, "input", scope)).findings)
        return _replayed(row, found, strongest([f["action"] for f in found]), output_replayed=False)
    if messages:
        texts, roles = [m["content"] for m in messages], [m["role"] for m in messages]
        keep((await pipeline.check_texts(INPUT_CHECKS, policy.input, texts, "input", scope, roles=roles)).findings)
    # The output exists only if the active policy let the request through its input stage; a blocked stream
    # stored what it sent, not the segment that was cut.
    stored_findings = row["findings"]
    input_blocked = any(f["stage"] == "input" and f["action"] == "block" for f in stored_findings)
    cut_stream = row["kind"] == "stream_close" and any(
        f["stage"] == "output" and f["action"] == "block" for f in stored_findings
    )
    output_text = row["output_redacted"]
    output_replayed = not input_blocked and not cut_stream and output_text not in (None, *unstored)
    section = policy.output
    if section.toxicity is not None and section.toxicity.enabled and not input_blocked:
        scores = _stored_scores(row, "toxicity", "output")
        if scores and set(section.toxicity.thresholds) <= set(scores):  # the stored scores decide it
            found += _toxicity_from_scores(section.toxicity, scores)
            section = msgspec.structs.replace(section, toxicity=None)
    if output_replayed:
        users = [m["content"] for m in messages if m["role"] == "user"]
        out = await pipeline.check_texts(
            OUTPUT_CHECKS, section, [output_text], "output", scope, prompt=users[-1] if users else None
        )
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
        "active_blocks": _blocking_types(row["findings"]),
        "candidate_blocks": _blocking_types(found),
        "output_replayed": output_replayed,
    }


def flip_report(replayed: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of changed decisions: every (active -> candidate) pair, and what became or stopped being blocked, per
    category (the blocking finding's type) and per key, each with example decision ids."""
    pairs: defaultdict[str, dict[str, Any]] = defaultdict(_group)
    sides: dict[str, dict[str, defaultdict[str, dict[str, Any]]]] = {
        side: {"by_category": defaultdict(_group), "by_key": defaultdict(_group)}
        for side in ("newly_blocked", "no_longer_blocked")
    }
    for item in replayed:
        active, candidate = item["active"], item["candidate"]
        if active == candidate:
            continue
        _add(pairs[f"{active}{_ARROW}{candidate}"], item["decision_id"])
        if (active == "block") == (candidate == "block"):
            continue
        side = "newly_blocked" if candidate == "block" else "no_longer_blocked"
        categories = item["candidate_blocks"] if candidate == "block" else item["active_blocks"]
        for category in categories or ["(none recorded)"]:
            _add(sides[side]["by_category"][category], item["decision_id"])
        _add(sides[side]["by_key"][item["key_id"] or "(no key)"], item["decision_id"])
    return {
        "rows": len(replayed),
        "changed": sum(group["count"] for group in pairs.values()),
        "allow_to_block": sum(g["count"] for p, g in pairs.items() if p.endswith(f"{_ARROW}block")),
        "block_to_allow": sum(g["count"] for p, g in pairs.items() if p.startswith(f"block{_ARROW}")),
        "output_not_replayed": sum(not item["output_replayed"] for item in replayed),
        "pairs": dict(sorted(pairs.items())),
        **{side: {k: dict(sorted(v.items())) for k, v in groups.items()} for side, groups in sides.items()},
    }


def _pairs_table(title: str, first_column: str, pairs: dict[str, dict[str, Any]]) -> Table:
    """Decision pairs (``allow -> block``…) with their counts and example decision ids."""
    table = Table(title=title)
    for column in (first_column, "count", "example decision ids"):
        table.add_column(column)
    for pair, group in pairs.items():
        table.add_row(pair, str(group["count"]), "\n".join(group["decision_ids"]))
    return table


def _print_flips(report: dict[str, Any]) -> None:
    console = Console()
    candidate = report["candidate"]
    console.print(
        f"replayed {report['rows']} decisions under {candidate['name']} {candidate['version']}: "
        f"{report['changed']} change(s); allow->block {report['allow_to_block']}, "
        f"block->allow {report['block_to_allow']}; output not replayable in {report['output_not_replayed']}",
        highlight=False,
    )
    console.print(_pairs_table("decision changes (active -> candidate)", "change", report["pairs"]))
    for side, title in (("newly_blocked", "allow -> block"), ("no_longer_blocked", "block -> allow")):
        for by, label in (("by_category", "category"), ("by_key", "key_id")):
            groups = report[side][by]
            if not groups:
                continue
            table = Table(title=f"{title} by {label}")
            for column in (label, "count", "example decision ids"):
                table.add_column(column)
            for name, group in groups.items():
                table.add_row(name, str(group["count"]), "\n".join(group["decision_ids"]))
            console.print(table)


def _load_candidate(path: Path) -> LoadedPolicy:
    from guard.policy import PolicyError, load_policy_file

    try:
        loaded = load_policy_file(path)
    except PolicyError as exc:
        fail(f"invalid candidate policy: {exc}")
    # The candidate is evaluated alone: its own shadow (if it names one) plays no part in a replay.
    return dataclasses.replace(loaded, policy=msgspec.structs.replace(loaded.policy, shadow=None))


def load_models(settings_: Any) -> Any:
    """The service's models for the profile (the same checks, models and thresholds as a running gateway)."""
    from guard.models import load_models as load

    return load(settings_)


async def replay_all(pipeline: Pipeline, candidate: LoadedPolicy, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Side by side, so the checks' micro-batchers batch the texts of many stored decisions together.
    return list(await asyncio.gather(*(replay_decision(pipeline, candidate, row) for row in rows)))


@click.command("replay")
@click.option(
    "--candidate",
    "candidate_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The candidate policy file.",
)
@click.option("--since", required=True, help="ISO-8601 start (inclusive; UTC unless a zone is given).")
@click.option("--until", help="ISO-8601 end (exclusive).")
@click.option("--policy", "policy_name", help="Only decisions taken under this (active) policy.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write it as JSON.")
def replay(candidate_path: Path, since: str, until: str | None, policy_name: str | None, json_out: Path | None) -> None:
    """Re-evaluate stored decisions (GUARD_DATABASE_URL) under a candidate policy and report the flips."""
    from guard.audit import AuditWriter, SubjectHasher, create_engine
    from guard.checks import CheckUnavailable
    from guard.pipeline import Pipeline
    from guard.policy import PolicyRegistry

    candidate = _load_candidate(candidate_path)
    rows = asyncio.run(_read(_when(since), _when(until), policy_name, with_shadow=False))
    config = settings()
    models = load_models(config)
    for section in (candidate.policy.input.prohibited_use, candidate.policy.output.prohibited_use):
        if section is not None:
            try:
                models.checks["prohibited_use"].validate(section)
            except CheckUnavailable as exc:
                fail(f"the candidate cannot run here: {exc}")

    async def run() -> list[dict[str, Any]]:
        engine = create_engine(config.database.url)  # the writer is never used: a replay records nothing
        pipeline = Pipeline(
            PolicyRegistry({candidate.name: candidate}, candidate.name),
            models,
            AuditWriter(engine),
            SubjectHasher(os.urandom(32)),
            max_new_tokens=1,
        )
        try:
            return await replay_all(pipeline, candidate, rows)
        finally:
            pipeline.close()
            await engine.dispose()

    replayed = asyncio.run(run())
    report = {
        "candidate": {
            "name": candidate.name,
            "version": candidate.version,
            "sha256": candidate.sha256,
            "source": candidate.source,
        },
        "range": {"since": since, "until": until, "policy": policy_name},
        **flip_report(replayed),
        "decisions": replayed,
    }
    _print_flips(report)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
