"""api keys: scoped bearer keys, stored as sha256 digests (never the key)

Revision ID: e2a9c4b7d813
Revises: c7d2e4f1a9b6
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "e2a9c4b7d813"
down_revision = "c7d2e4f1a9b6"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("key_digest", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scopes", _JSON, nullable=False),
        sa.Column("policy", sa.String(64)),
        sa.Column("allowed_policies", _JSON, nullable=False),
        sa.Column("rate", sa.String(32)),
        sa.Column("tenant", sa.String(128)),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("revoked_at", DateTimeUTC(timezone=True)),
        sa.UniqueConstraint("key_digest", name="uq_api_keys_key_digest"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
