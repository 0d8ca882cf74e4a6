"""prompt_hmac: a keyed digest of the last user message, to find the same prompt across keys and tenants

Revision ID: a1c3e5f7b9d2
Revises: d9e1f3a5b7c4
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a1c3e5f7b9d2"
down_revision = "d9e1f3a5b7c4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_decisions") as batch:
        batch.add_column(sa.Column("prompt_hmac", sa.String(64)))
    op.create_index("ix_audit_decisions_prompt_hmac", "audit_decisions", ["prompt_hmac"])


def downgrade() -> None:
    op.drop_index("ix_audit_decisions_prompt_hmac", table_name="audit_decisions")
    with op.batch_alter_table("audit_decisions") as batch:
        batch.drop_column("prompt_hmac")
