"""reviewer_sessions: the reviewer page's sign-in sessions, shared by every replica (session ids stored hashed)

Revision ID: 5d8e2f1a7c34
Revises: ca2c3d007552
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "5d8e2f1a7c34"
down_revision = "ca2c3d007552"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviewer_sessions",
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("expires_at", DateTimeUTC(timezone=True)),
    )
    op.create_index("ix_reviewer_sessions_expires_at", "reviewer_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_reviewer_sessions_expires_at", table_name="reviewer_sessions")
    op.drop_table("reviewer_sessions")
