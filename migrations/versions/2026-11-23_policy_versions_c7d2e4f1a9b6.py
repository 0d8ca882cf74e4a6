"""policy versions: every distinct (name, version, sha256) seen, with its full YAML text

An audit row's (policy_name, policy_version, policy_sha256) stamp points here, so a reviewer can open the exact
policy behind any decision.

Revision ID: c7d2e4f1a9b6
Revises: 5b7e9d1a3c20
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "c7d2e4f1a9b6"
down_revision = "5b7e9d1a3c20"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("first_seen_at", DateTimeUTC(timezone=True), nullable=False),
        sa.UniqueConstraint("name", "version", "sha256", name="uq_policy_versions_stamp"),
    )
    op.create_index("ix_policy_versions_name_sha256", "policy_versions", ["name", "sha256"])


def downgrade() -> None:
    op.drop_table("policy_versions")
