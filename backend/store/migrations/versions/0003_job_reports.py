"""Job reports: whether a failure was allowed, and what the job's JUnit reports counted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TEST_COLUMNS = (
    "tests_total",
    "tests_failed",
    "tests_errors",
    "tests_skipped",
    "tests_time",
    "tests_failed_names",
)


def upgrade() -> None:
    """Add ``allowed`` and the ``tests_*`` columns (all null: the job left no report) to jobs."""
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(
            sa.Column("allowed", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("tests_total", sa.Integer))
        batch.add_column(sa.Column("tests_failed", sa.Integer))
        batch.add_column(sa.Column("tests_errors", sa.Integer))
        batch.add_column(sa.Column("tests_skipped", sa.Integer))
        batch.add_column(sa.Column("tests_time", sa.Float))
        batch.add_column(sa.Column("tests_failed_names", sa.Text))  # a JSON list
    # jobs recorded before: a FAILED job allowed to fail was one with allow_failure
    job_runs = sa.table(
        "job_runs",
        sa.column("allowed", sa.Boolean),
        sa.column("allow_failure", sa.Boolean),
        sa.column("status", sa.String),
    )
    op.execute(
        job_runs.update()
        .where(job_runs.c.status == "FAILED", job_runs.c.allow_failure == sa.true())
        .values(allowed=True)
    )


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("job_runs") as batch:
        for column in reversed(_TEST_COLUMNS):
            batch.drop_column(column)
        batch.drop_column("allowed")
