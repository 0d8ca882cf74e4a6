"""``guard audit …``: the compliance reviewer's commands. Reading (query, export, stats) lives in audit_review.py,
the chain (verify, checkpoint, purge, subject) in audit_chain.py; both register on this group."""

from __future__ import annotations

import click

from guard.cli.audit_chain import (
    audit_checkpoint,
    audit_purge,
    audit_rotate_hmac_key,
    audit_rotate_signing_key,
    audit_subject,
    audit_verify,
)
from guard.cli.audit_review import audit_export, audit_query, audit_show, audit_stats

__all__ = ["audit"]


@click.group()
def audit() -> None:
    """Query, export and verify the audit log (GUARD_DATABASE_URL)."""


for _command in (
    audit_query,
    audit_show,
    audit_export,
    audit_stats,
    audit_verify,
    audit_checkpoint,
    audit_purge,
    audit_rotate_signing_key,
    audit_rotate_hmac_key,
    audit_subject,
):
    audit.add_command(_command)
