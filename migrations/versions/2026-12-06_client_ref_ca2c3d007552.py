"""client_ref: the calling gateway's own id for a call (LiteLLM's litellm_call_id), indexed to join its logs

Revision ID: ca2c3d007552
Revises: a1c3e5f7b9d2
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ca2c3d007552"
down_revision = "a1c3e5f7b9d2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_decisions") as batch:
        batch.add_column(sa.Column("client_ref", sa.String(128)))
    op.create_index("ix_audit_decisions_client_ref", "audit_decisions", ["client_ref"])


def downgrade() -> None:
    op.drop_index("ix_audit_decisions_client_ref", table_name="audit_decisions")
    with op.batch_alter_table("audit_decisions") as batch:
        batch.drop_column("client_ref")
