"""stream records: kind and parent_id

A stream is audited as two linked records: ``stream_open`` (input side, committed before the first chunk) and
``stream_close`` (output side, committed before ``[DONE]``), whose ``parent_id`` is the opening record's id.

Revision ID: 8a41d2c6e5f3
Revises: 3f1c2a9b7d10
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "8a41d2c6e5f3"
down_revision = "3f1c2a9b7d10"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_decisions") as table:
        table.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="request"))
        table.add_column(sa.Column("parent_id", sa.String(36), nullable=True))
        table.create_index("ix_audit_decisions_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("audit_decisions") as table:
        table.drop_index("ix_audit_decisions_parent_id")
        table.drop_column("parent_id")
        table.drop_column("kind")
