"""``guard policy shadow-report`` and ``guard policy replay``: what a candidate policy would change, measured on
the traffic the audit log recorded (shadow decisions taken live, or stored decisions re-evaluated now). The reports
are built by :mod:`guard.evaluation.shadow` and :mod:`guard.evaluation.replay`; this module parses and prints."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from guard.cli.common import fail, settings

if TYPE_CHECKING:
    from guard.policy import LoadedPolicy

__all__ = ["replay", "shadow_report"]


def _when(value: str | None) -> datetime | None:
    """An ISO-8601 instant; one without a zone is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"not an ISO-8601 date or time: {value!r}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _read(since: str | None, until: str | None, policy: str | None, *, with_shadow: bool) -> list[dict[str, Any]]:
    from guard.evaluation import read_decisions

    start, end = _when(since), _when(until)
    url = settings().database.url
    return asyncio.run(read_decisions(url, since=start, until=end, policy=policy, with_shadow=with_shadow))


def _pairs_table(title: str, first_column: str, pairs: dict[str, dict[str, Any]]) -> Table:
    """Decision pairs (``allow -> block``…) with their counts and example decision ids."""
    table = Table(title=title)
    for column in (first_column, "count", "example decision ids"):
        table.add_column(column)
    for pair, group in pairs.items():
        table.add_row(pair, str(group["count"]), "\n".join(group["decision_ids"]))
    return table


# -- shadow-report ---------------------------------------------------------------------------------------------------


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
    from guard.evaluation import shadow_summary

    summary = shadow_summary(_read(since, until, policy_name, with_shadow=True))
    _print_shadow(summary)
    if json_out is not None:
        json_out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


# -- replay ----------------------------------------------------------------------------------------------------------


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
    from guard.evaluation import alone
    from guard.policy import PolicyError, load_policy_file

    try:
        return alone(load_policy_file(path))
    except PolicyError as exc:
        fail(f"invalid candidate policy: {exc}")


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
    from guard import evaluation
    from guard.checks.registry import PolicyCannotRun

    candidate = _load_candidate(candidate_path)
    rows = _read(since, until, policy_name, with_shadow=False)
    checks = evaluation.load_checks(settings())
    try:
        checks.validate(candidate)
    except PolicyCannotRun as exc:
        fail(f"the candidate cannot run here: {exc.reason}")

    async def run() -> list[dict[str, Any]]:
        runner = evaluation.CheckRunner(checks)
        try:
            return await evaluation.replay_all(runner, candidate, rows)
        finally:
            runner.close()

    replayed = asyncio.run(run())
    report = {
        "candidate": {
            "name": candidate.name,
            "version": candidate.version,
            "sha256": candidate.sha256,
            "source": candidate.source,
        },
        "range": {"since": since, "until": until, "policy": policy_name},
        **evaluation.flip_report(replayed),
        "decisions": replayed,
    }
    _print_flips(report)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
