"""Artifact details: the archive name, when the files expire, and what kind of file each is.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``name``, ``expires_at`` (indexed, for ``cicd gc``) and ``kind`` to ``artifacts``."""
    with op.batch_alter_table("artifacts") as batch:
        batch.add_column(sa.Column("name", sa.String(255)))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True)))
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="file")
        )
    op.create_index("ix_artifacts_expires_at", "artifacts", ["expires_at"])


def downgrade() -> None:
    """Drop the three columns again."""
    op.drop_index("ix_artifacts_expires_at", table_name="artifacts")
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_column("kind")
        batch.drop_column("expires_at")
        batch.drop_column("name")
