"""Retries: what a run was given, which run it retries, which run a reused job ran in.

``cicd retry NAME#N`` starts a run that re-runs the jobs of run N that did not succeed and
carries the others over: the new run records ``retry_of`` (N) and each carried-over job
``reused_from`` (the number of the run that really ran it). ``env`` keeps the run's ``--env``
values (a JSON object; never a secret: ``--secret`` values are not stored) so that a retry
gives its jobs the same variables.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``pipeline_runs.env``, ``pipeline_runs.retry_of`` and ``job_runs.reused_from``."""
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("env", sa.Text()))
        batch.add_column(sa.Column("retry_of", sa.Integer()))
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("reused_from", sa.Integer()))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("reused_from")
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("retry_of")
        batch.drop_column("env")
