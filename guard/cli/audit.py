"""``guard audit …``: the compliance reviewer's commands. Reading (query, export, stats) lives in audit_review.py,
the chain (verify, checkpoint, purge, subject) in audit_chain.py; both register on this group."""

from __future__ import annotations

import click

__all__ = ["audit"]


@click.group()
def audit() -> None:
    """Query, export and verify the audit log (GUARD_DATABASE_URL)."""


from guard.cli.audit_review import audit_export, audit_query, audit_show, audit_stats  # noqa: E402

audit.add_command(audit_query)
audit.add_command(audit_show)
audit.add_command(audit_export)
audit.add_command(audit_stats)

from guard.cli.audit_chain import audit_checkpoint, audit_purge, audit_subject, audit_verify  # noqa: E402

audit.add_command(audit_verify)
audit.add_command(audit_checkpoint)
audit.add_command(audit_purge)
audit.add_command(audit_subject)
