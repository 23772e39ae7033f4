"""What a job used and what its tests did: resources, recorded needs, and test cases.

``job_runs`` gets ``memory_peak_bytes`` and ``cpu_seconds`` (what its container used, null when
it was not measured), and ``needs`` (a JSON list of the jobs it waited for; null when the job
had no ``needs`` keyword, so stage order applied, or was recorded before this revision).
``test_cases`` keeps each JUnit test case's outcome per job run, so that flaky tests can be
found in the history (a bounded number per job run).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the three ``job_runs`` columns and the ``test_cases`` table."""
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("memory_peak_bytes", sa.BigInteger))
        batch.add_column(sa.Column("cpu_seconds", sa.Float))
        batch.add_column(sa.Column("needs", sa.Text))
    op.create_table(
        "test_cases",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("job_run_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_test_cases"),
        sa.ForeignKeyConstraint(
            ["job_run_id"],
            ["job_runs.id"],
            name="fk_test_cases_job_run_id_job_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_test_cases_job_run_id", "test_cases", ["job_run_id"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_test_cases_job_run_id", table_name="test_cases")
    op.drop_table("test_cases")
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("needs")
        batch.drop_column("cpu_seconds")
        batch.drop_column("memory_peak_bytes")
