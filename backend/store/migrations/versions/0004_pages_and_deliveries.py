"""Keyset pages of runs and remembered webhook deliveries.

Two indexes let ``GET /runs`` answer a page newest first in a few milliseconds whatever the
history holds (one pipeline's runs, or one status's, by ``id``), and ``webhook_deliveries``
keeps the delivery ids of the webhooks already handled, so that a redelivery starts nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the two run indexes and the ``webhook_deliveries`` table."""
    op.create_index("ix_pipeline_runs_pipeline_id", "pipeline_runs", ["pipeline", "id"])
    op.create_index("ix_pipeline_runs_status_id", "pipeline_runs", ["status", "id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("delivery", sa.String(200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("runs", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint(
            "provider", "delivery", name="uq_webhook_deliveries_provider_delivery"
        ),
    )


def downgrade() -> None:
    """Drop the table and the indexes again."""
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_pipeline_runs_status_id", table_name="pipeline_runs")
    op.drop_index("ix_pipeline_runs_pipeline_id", table_name="pipeline_runs")
