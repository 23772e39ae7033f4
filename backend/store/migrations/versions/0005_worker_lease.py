"""A run's lease: when the worker executing it last said it is alive.

A run handed to a Prefect work pool (``cicd server --pool``) is executed by a ``cicd worker``
that may be on another machine; the worker renews ``heartbeat_at`` every few seconds, and the
server settles a run whose lease has run out (its worker died) as FAILED.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``pipeline_runs.heartbeat_at``."""
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("heartbeat_at")
