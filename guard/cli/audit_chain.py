"""``guard audit verify|checkpoint|purge|subject``: the chain's integrity, retention and data-subject requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit.admin_events import process_actor
from guard.audit.checkpoint import (
    InvalidCheckpoint,
    chain_heads,
    load_checkpoint,
    load_or_create_signing_key,
    make_checkpoint,
    public_key_hex,
    rotate_signing_key,
    signing_key_path,
)
from guard.audit.retention import erase_subject, find_subject, purge
from guard.audit.subjects import SubjectHasher, add_key, load_keyring
from guard.audit.verify import VerifyReport, verify_audit
from guard.cli.common import fail, run_db, settings
from guard.policy.schema import PII_ENTITIES

__all__ = [
    "audit_checkpoint",
    "audit_purge",
    "audit_rotate_hmac_key",
    "audit_rotate_signing_key",
    "audit_subject",
    "audit_verify",
    "write_bundle",
]

_console = Console(width=200)


def _print_report(report: VerifyReport) -> None:
    table = Table(title="audit chains")
    for column in ("chain", "rows", "erased", "head seq", "head hash", "purged through", "status"):
        table.add_column(column)
    for chain in report.chains:
        broken = chain.broken
        status = (
            "[green]ok[/]"
            if broken is None
            else f"[red]BROKEN at seq {broken.seq} (decision {broken.decision_id}): {broken.reason}[/]"
        )
        table.add_row(
            chain.chain_id,
            str(chain.rows),
            str(chain.erased),
            str(chain.head_seq),
            chain.head_hash[:16],
            str(chain.cut.seq) if chain.cut else "-",
            status,
        )
    _console.print(table)
    admin = (
        "[green]ok[/]"
        if report.admin_broken is None
        else f"[red]BROKEN at event {report.admin_broken.id}: {report.admin_broken.reason}[/]"
    )
    _console.print(f"admin events: {report.admin_events}, {admin}")
    if report.checkpoint_public_key:
        _console.print(f"checkpoint signed by Ed25519 key {report.checkpoint_public_key}")
    _console.print("[bold green]audit log verified[/]" if report.ok else "[bold red]audit log verification FAILED[/]")


def _signing_key() -> Ed25519PrivateKey:
    key_path = signing_key_path(settings())
    try:
        return load_or_create_signing_key(key_path)
    except (InvalidCheckpoint, ValueError) as exc:
        fail(f"signing key {key_path}: {exc}", code=1)


def write_bundle(directory: Path, *, since: datetime | None, until: datetime | None) -> None:
    """``guard audit export --bundle DIR``: the records of ``[since, until)``, signed with the audit signing key."""
    from guard.audit.bundle import BundleError, export_bundle

    key = _signing_key()
    try:
        summary = run_db(lambda engine: export_bundle(engine, directory, key, since=since, until=until))
    except BundleError as exc:
        fail(str(exc), code=1)
    _console.print(
        f"bundle of {summary.records} records in {summary.chains} chains and {summary.admin_events} admin events"
        f" written to {directory}, signed by {summary.public_key}"
    )


def _verify_bundle(directory: Path, public_key: str | None) -> None:
    from guard.audit.bundle_verify import verify_bundle

    if not public_key:
        fail("--bundle needs --public-key: the first signing key's public key, obtained out of band", code=1)
    report = verify_bundle(directory, public_key.strip())
    _console.print(
        f"{report.records} records, {report.admin_events} admin events, {len(report.key_chain)} keys in the chain"
    )
    for problem in report.problems:
        _console.print(f"[red]BROKEN {problem}[/]", highlight=False)
    if not report.ok:
        _console.print("[bold red]bundle verification FAILED[/]")
        raise SystemExit(1)
    _console.print("[bold green]bundle verified[/]")


@click.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A signed checkpoint (guard audit checkpoint): its heads must still be there.",
)
@click.option(
    "--bundle",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Check an exported bundle instead of the database (no database access).",
)
@click.option("--public-key", help="With --bundle: the first signing key's public key (hex), obtained out of band.")
def audit_verify(checkpoint_file: Path | None, bundle: Path | None, public_key: str | None) -> None:
    """Walk every chain and report the first broken link; exit 1 on any break."""
    if bundle is not None:
        _verify_bundle(bundle, public_key)
        return
    checkpoint = None
    if checkpoint_file is not None:
        try:
            checkpoint = load_checkpoint(checkpoint_file)
        except InvalidCheckpoint as exc:
            fail(str(exc), code=1)
        key_path = signing_key_path(settings())
        if key_path.is_file() and public_key_hex(load_or_create_signing_key(key_path)) != checkpoint.public_key:
            fail(f"the checkpoint was not signed by the signing key in {key_path}", code=1)
    report = run_db(lambda engine: verify_audit(engine, checkpoint))
    _print_report(report)
    if not report.ok:
        raise SystemExit(1)


@click.command("checkpoint")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Where to write the signed checkpoint (keep it outside the database's reach).",
)
def audit_checkpoint(out: Path) -> None:
    """Export the chain heads, signed with the Ed25519 key in GUARD_AUDIT_SIGNING_KEY (or $GUARD_HOME)."""
    key = _signing_key()
    heads = run_db(chain_heads)
    document = make_checkpoint(heads, key)
    out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _console.print(f"checkpoint of {len(heads)} chains written to {out}")
    _console.print(f"public key (record it elsewhere): {document['public_key']}")


@click.command("rotate-signing-key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def audit_rotate_signing_key(yes: bool) -> None:
    """Replace the audit signing key; the hand-over is an admin event signed by the outgoing key."""
    key_path = signing_key_path(settings())
    if not yes:
        click.confirm(f"Replace the audit signing key in {key_path}?", abort=True)
    old, new = run_db(lambda engine: rotate_signing_key(engine, key_path, actor=process_actor()))
    _console.print(f"signing key rotated: {old} -> {new} (recorded as an audit.signing_key_rotate admin event)")


@click.command("rotate-hmac-key")
def audit_rotate_hmac_key() -> None:
    """Add a new subject-digest HMAC key ($GUARD_HOME/audit-hmac.key): new records use it, lookups use every key."""
    from guard.audit.admin_events import record_admin_event

    config = settings()
    if config.keys.audit_hmac is not None:
        fail("GUARD_AUDIT_HMAC_KEY is set: rotate the key where that secret is kept (see README)", code=1)
    path = config.home / "audit-hmac.key"
    key_id = add_key(path)

    async def record(engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            details = {"key_id": key_id, "file": path.name}
            await record_admin_event(
                connection, actor=process_actor(), action="audit.hmac_key_rotate", subject=key_id, details=details
            )

    run_db(record)
    _console.print(f"new HMAC key {key_id} in {path}: restart every replica so new records use it")


def _date(_: click.Context, __: click.Parameter, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected an ISO 8601 date or time, e.g. 2026-01-01") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@click.command("purge")
@click.option("--before", required=True, callback=_date, help="Delete rows created before this date (UTC).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def audit_purge(before: datetime, yes: bool) -> None:
    """Delete each chain's rows up to its last row created before DATE, recording the cut (an admin event)."""
    if not yes:
        click.confirm(f"Delete audit rows created before {before.isoformat()}?", abort=True)
    result = run_db(lambda engine: purge(engine, before, actor=process_actor()))
    table = Table(title="purged")
    for column in ("chain", "cut seq", "cut hash", "deleted"):
        table.add_column(column)
    for chain_id, cut in sorted(result.cuts.items()):
        table.add_row(chain_id, str(cut.seq), cut.row_hash[:16], str(result.deleted[chain_id]))
    _console.print(table)


def subject_digests(hasher: SubjectHasher, value: str) -> list[str]:
    """The keyed digests the pipeline would have recorded for ``value`` as any PII entity (as sent, and normalised)."""
    from guard.checks.normalize import normalize  # here: it loads the checks (and torch), which --help does not need

    forms = {value, normalize(value).text}
    return sorted({digest for entity in PII_ENTITIES for form in forms for digest in hasher.digests(entity, form)})


@click.command("subject")
@click.option("--value", required=True, help="The identifier (an email, a name, ...): matched by its keyed digest.")
@click.option("--erase", is_flag=True, help="Blank the content of every matching record (the chain still verifies).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation before erasing.")
def audit_subject(value: str, erase: bool, yes: bool) -> None:
    """Find (and with --erase, blank) every record of one data subject."""
    config = settings()
    hasher = SubjectHasher(load_keyring(config.home / "audit-hmac.key", config.keys.audit_hmac))
    digests = subject_digests(hasher, value)
    rows = run_db(lambda engine: find_subject(engine, digests))
    table = Table(title=f"{len(rows)} records")
    for column in ("decision_id", "created_at", "route", "decision", "chain", "seq", "erased"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.decision_id,
            row.created_at.isoformat(),
            row.route,
            row.decision,
            row.chain_id,
            str(row.seq),
            "yes" if row.erased else "",
        )
    _console.print(table)
    if not erase or not rows:
        return
    if not yes:
        click.confirm(f"Erase the content of {len(rows)} records?", abort=True)
    erased = run_db(lambda engine: erase_subject(engine, digests, actor=process_actor()))
    _console.print(f"erased {len(erased)} records (recorded as an audit.erase admin event)")
