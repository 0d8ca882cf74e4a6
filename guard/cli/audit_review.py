"""``guard audit query|show|export|stats``: read the audit log at GUARD_DATABASE_URL directly, with the same filters
and the same query code as ``GET /v1/audit`` (guard.audit.queries, explain, export, stats)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit.queries import DECISIONS, KINDS, STAGES, AuditFilters
from guard.cli.audit_chain import write_bundle
from guard.cli.common import fail, run_db

if TYPE_CHECKING:
    from guard.audit.export import ExportFormat

__all__ = ["audit_export", "audit_query", "audit_show", "audit_stats"]

F = TypeVar("F", bound=Callable[..., Any])
_console = Console(width=200)


def _when(_: click.Context, __: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 date or time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected an ISO 8601 date or time, e.g. 2026-11-23 or 2026-11-23T12:00Z") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _filter_options(command: F) -> F:
    """The reviewer filters, as options (the same as the API's query parameters, plus ``--tenant``)."""
    options = [
        click.option("--since", callback=_when, help="From this time (ISO 8601, UTC unless a zone is given)."),
        click.option("--until", callback=_when, help="Before this time (exclusive)."),
        click.option("--decision", type=click.Choice(DECISIONS)),
        click.option("--policy", help="Policy name."),
        click.option("--policy-version"),
        click.option("--key-id"),
        click.option("--route", help="e.g. /v1/scan or /v1/chat/completions."),
        click.option("--outcome", help="e.g. ok, rejected, error."),
        click.option("--kind", type=click.Choice(KINDS)),
        click.option("--check", help="A finding's check: pii, toxicity, prohibited_use, injection."),
        click.option("--finding-type", help="A finding's type: PII entity, toxicity label, category."),
        click.option("--stage", type=click.Choice(STAGES), help="The stage a finding was made in."),
        click.option("--prompt-hmac", help="Decisions on the same prompt (a decision's prompt_hmac)."),
        click.option("--client-ref", help="Decisions on one call of a calling gateway (LiteLLM's litellm_call_id)."),
        click.option("--tenant"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filters(options: dict[str, Any]) -> AuditFilters:
    names = {field.name for field in fields(AuditFilters)}
    return AuditFilters(**{name: value for name, value in options.items() if name in names})


def _short(value: str | None, width: int = 12) -> str:
    return "" if value is None else value[:width]


def _categories(findings: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({f"{f.get('check')}:{f.get('type')}" for f in findings}))


@click.command("query")
@_filter_options
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="Rows per page.")
@click.option("--cursor", help="The next-page cursor printed by the previous page.")
def audit_query(limit: int, cursor: str | None, **options: Any) -> None:
    """List decisions, newest first, one row each."""
    from guard.audit.queries import InvalidCursor, list_decisions

    filters = _filters(options)
    try:
        rows, next_cursor = run_db(lambda engine: list_decisions(engine, filters, limit=limit, cursor=cursor))
    except InvalidCursor:
        fail("invalid --cursor")
    table = Table("decision_id", "time (UTC)", "route", "kind", "outcome", "decision", "policy", "key_id", "findings")
    for row in rows:
        table.add_row(
            row["decision_id"],
            row["created_at"].astimezone(UTC).isoformat(timespec="seconds"),
            row["route"],
            row["kind"],
            row["outcome"],
            row["decision"],
            f"{row['policy_name'] or ''} {row['policy_version'] or ''}".strip(),
            _short(row["key_id"]),
            _categories(row["findings"]),
        )
    _console.print(table)
    if next_cursor is not None:
        click.echo(f"next page: --cursor {next_cursor}")


@click.command("show")
@click.argument("decision_id")
def audit_show(decision_id: str) -> None:
    """One decision and why: per finding the check, policy clause, score vs threshold, action, redacted span."""
    from guard.audit.explain import Explained, explain_record
    from guard.audit.queries import get_decision
    from guard.store.policy_versions import load_stored_policy

    async def load(engine: AsyncEngine) -> tuple[dict[str, Any], Explained] | None:
        record = await get_decision(engine, decision_id)
        if record is None:
            return None
        policy = await load_stored_policy(engine, record["policy_name"], record["policy_sha256"])
        return record, await explain_record(engine, record, policy)

    found = run_db(load)
    if found is None:
        fail(f"no decision {decision_id}", code=1)
    record, explained = found
    summary = Table("field", "value", show_header=False)
    for name in ("decision_id", "created_at", "route", "kind", "outcome", "http_status", "decision", "tenant"):
        summary.add_row(name, str(record[name]))
    stamp = f"{record['policy_name']} {record['policy_version']} sha256={_short(record['policy_sha256'])}"
    summary.add_row("policy", stamp + ("" if explained.policy_found else " (version not stored)"))
    if explained.linked_id is not None:
        summary.add_row("linked record", explained.linked_id)
    _console.print(summary)
    table = Table("check", "type", "stage", "clause", "rule", "score", "threshold", "action", "redacted span")
    for item in explained.findings:
        threshold = "" if item.threshold is None else f"{item.threshold:g}"
        table.add_row(
            item.check,
            item.type,
            item.stage or "",
            item.clause,
            item.rule or "",
            f"{item.score:g}",
            threshold + (" (recorded)" if item.threshold_source == "record" else ""),
            item.action,
            item.redacted_span or "",
        )
    _console.print(table)


@click.command("export")
@_filter_options
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option(
    "--bundle",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a signed, offline-verifiable bundle of --since/--until into this (new or empty) directory instead.",
)
def audit_export(fmt: ExportFormat, out: Path | None, bundle: Path | None, **options: Any) -> None:
    """Write every matching decision (newest first) to a CSV or JSON Lines file, with a progress bar; or, with
    --bundle, the records of a time range with their chain links, the admin events and a signed manifest."""
    from guard.audit.export import export_chunks
    from guard.audit.queries import count_decisions

    if bundle is not None:
        extra = sorted(name for name, value in options.items() if value is not None and name not in {"since", "until"})
        if out is not None or extra:
            fail("--bundle takes only --since and --until (a bundle holds whole chain spans)")
        write_bundle(bundle, since=options["since"], until=options["until"])
        return
    if out is None:
        fail("give --out FILE (or --bundle DIR)")
    target: Path = out
    filters = _filters(options)

    async def write(engine: AsyncEngine) -> int:
        total = await count_decisions(engine, filters)
        written = 0
        columns = [TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with target.open("wb") as sink, Progress(*columns, console=Console(stderr=True)) as progress:
            task = progress.add_task("export", total=total)
            async for rows, chunk in export_chunks(engine, filters, fmt):
                sink.write(chunk)
                written += rows
                progress.advance(task, rows)
        return written

    click.echo(f"{run_db(write)} decisions written to {target}")


@click.command("stats")
@_filter_options
def audit_stats(**options: Any) -> None:
    """Decisions per UTC day, by decision and by finding category (check:type)."""
    from guard.audit.stats import decision_stats

    stats = run_db(lambda engine: decision_stats(engine, _filters(options)))
    table = Table("day (UTC)", *DECISIONS, "total", title="decisions")
    days: dict[str, dict[str, int]] = {}
    for entry in stats.by_decision:
        days.setdefault(entry.day, {})[entry.decision] = entry.count
    for day, counts in days.items():
        table.add_row(day, *(str(counts.get(name, 0)) for name in DECISIONS), str(sum(counts.values())))
    _console.print(table)
    categories = Table("day (UTC)", "category", "decisions", title="by category")
    for item in stats.by_category:
        categories.add_row(item.day, item.category, str(item.count))
    _console.print(categories)
