"""audit decisions

Revision ID: 3f1c2a9b7d10
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB as PG_JSONB

revision = "3f1c2a9b7d10"
down_revision = None
branch_labels = None
depends_on = None

JsonB = sa.JSON().with_variant(PG_JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_decisions",
        sa.Column("decision_id", sa.String(36), primary_key=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(64)),
        sa.Column("tenant", sa.String(128)),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("policy_name", sa.String(64)),
        sa.Column("policy_version", sa.String(64)),
        sa.Column("policy_sha256", sa.String(64)),
        sa.Column("shadow", JsonB),
        sa.Column("engine", sa.String(64)),
        sa.Column("model", sa.String(256)),
        sa.Column("model_revision", sa.String(128)),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("findings", JsonB, nullable=False),
        sa.Column("input_redacted", JsonB, nullable=False),
        sa.Column("output_redacted", sa.Text),
        sa.Column("coverage", sa.Float),
        sa.Column("tokens_in", sa.Integer),
        sa.Column("tokens_out", sa.Integer),
        sa.Column("latency_ms", JsonB, nullable=False),
        sa.Column("subject_hmacs", JsonB, nullable=False),
        sa.Column("chain_id", sa.String(36), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_decisions_created_at", "audit_decisions", ["created_at", "decision_id"])
    op.create_index("ix_audit_decisions_decision", "audit_decisions", ["decision", "created_at"])
    op.create_index("ix_audit_decisions_policy", "audit_decisions", ["policy_name", "policy_version"])
    op.create_index("ix_audit_decisions_key_id", "audit_decisions", ["key_id", "created_at"])


def downgrade() -> None:
    op.drop_table("audit_decisions")
