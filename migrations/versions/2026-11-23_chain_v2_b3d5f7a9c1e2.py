"""audit chain v2: per-chain sequence numbers, a digest of the content (so erasure keeps the chain), erasure time

Rows written before this revision have no ``seq``: ``guard audit verify`` reports them as legacy (unchained v1).

Revision ID: b3d5f7a9c1e2
Revises: f4b1c3d5e7a9
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "b3d5f7a9c1e2"
down_revision = "f4b1c3d5e7a9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_decisions") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger))
        batch.add_column(sa.Column("content_digest", sa.String(64)))
        batch.add_column(sa.Column("erased_at", DateTimeUTC(timezone=True)))
    op.create_index("ux_audit_decisions_chain_seq", "audit_decisions", ["chain_id", "seq"], unique=True)
    op.create_index("ix_audit_decisions_tenant", "audit_decisions", ["tenant", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_decisions_tenant", table_name="audit_decisions")
    op.drop_index("ux_audit_decisions_chain_seq", table_name="audit_decisions")
    with op.batch_alter_table("audit_decisions") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("content_digest")
        batch.drop_column("seq")
