"""check scores: every check's raw scores per text

Toxicity labels, embedding similarities and judge probabilities are recorded whether or not they crossed a
threshold, so a reviewer can see how close a decision was and a replay can re-threshold them.

Revision ID: 5b7e9d1a3c20
Revises: 8a41d2c6e5f3
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "5b7e9d1a3c20"
down_revision = "8a41d2c6e5f3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    with op.batch_alter_table("audit_decisions") as table:
        table.add_column(sa.Column("scores", json_type, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("audit_decisions") as table:
        table.drop_column("scores")
