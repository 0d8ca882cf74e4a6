"""``guard audit …``: the compliance reviewer's commands. Reading (query, export, stats) lives in audit_review.py,
the chain (verify, checkpoint, purge, subject) in audit_chain.py; both register on this group."""

from __future__ import annotations

import click

__all__ = ["audit"]


@click.group()
def audit() -> None:
    """Query, export and verify the audit log (GUARD_DATABASE_URL)."""
