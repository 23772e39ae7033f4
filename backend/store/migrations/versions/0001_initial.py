"""Initial history schema: pipeline runs, stage runs, job runs, artifacts.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copy of the schema at this revision: later changes go in new revisions, not here.


def upgrade() -> None:
    """Create the four history tables."""
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("repo", sa.Text, nullable=False),
        sa.Column("branch", sa.String(255)),
        sa.Column("commit", sa.String(64), nullable=False),
        sa.Column("file", sa.Text, nullable=False),
        sa.Column("request_key", sa.String(128), nullable=False),
        sa.Column("overrides", sa.Text, nullable=False),
        sa.Column("worker", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
        sa.Column("flow_run_id", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_runs"),
        sa.UniqueConstraint("pipeline", "number", name="uq_pipeline_runs_pipeline_number"),
    )
    op.create_index("ix_pipeline_runs_request_key", "pipeline_runs", ["request_key"])
    op.create_table(
        "stage_runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_stage_runs"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_runs.id"],
            name="fk_stage_runs_run_id_pipeline_runs",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("run_id", "name", name="uq_stage_runs_run_id_name"),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("stage_run_id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("allow_failure", sa.Boolean, nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("image", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("log_path", sa.Text),
        sa.Column("worker", sa.String(255)),
        sa.PrimaryKeyConstraint("id", name="pk_job_runs"),
        sa.ForeignKeyConstraint(
            ["stage_run_id"],
            ["stage_runs.id"],
            name="fk_job_runs_stage_run_id_stage_runs",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_runs.id"],
            name="fk_job_runs_run_id_pipeline_runs",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("run_id", "name", name="uq_job_runs_run_id_name"),
    )
    op.create_index("ix_job_runs_stage_run_id", "job_runs", ["stage_run_id"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("job_run_id", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("stored_path", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(
            ["job_run_id"],
            ["job_runs.id"],
            name="fk_artifacts_job_run_id_job_runs",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("job_run_id", "path", name="uq_artifacts_job_run_id_path"),
    )


def downgrade() -> None:
    """Drop the four history tables."""
    op.drop_table("artifacts")
    op.drop_index("ix_job_runs_stage_run_id", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_table("stage_runs")
    op.drop_index("ix_pipeline_runs_request_key", table_name="pipeline_runs")
    op.drop_table("pipeline_runs")
