"""a GIN index on findings (PostgreSQL only), for the reviewer's check / finding-type filters

Revision ID: d9e1f3a5b7c4
Revises: b3d5f7a9c1e2
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "d9e1f3a5b7c4"
down_revision = "b3d5f7a9c1e2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # jsonb_path_ops serves the containment queries (findings @> '[{"check": ...}]') the filters use; SQLite scans
    # json_each instead, which is fine at its scale.
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_audit_decisions_findings",
            "audit_decisions",
            ["findings"],
            postgresql_using="gin",
            postgresql_ops={"findings": "jsonb_path_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_audit_decisions_findings", table_name="audit_decisions")
