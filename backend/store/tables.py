"""Table definitions of the history store (SQLAlchemy Core).

The schema itself is created and evolved by the alembic migrations in ``migrations/versions``;
these objects only describe it for queries and must match the latest migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, always written as UTC and always read back timezone-aware (UTC).

    PostgreSQL keeps the offset (``timestamptz``); SQLite keeps a naive text value, which is UTC
    by construction. A naive value given to the store is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite stores the text as given; keep one canonical (naive UTC) form so that
            # values compare and sort correctly.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pipeline", String(200), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("repo", Text, nullable=False),
    Column("branch", String(255)),
    Column("commit", String(64), nullable=False),
    Column("file", Text, nullable=False),
    Column("request_key", String(128), nullable=False, index=True),
    Column("overrides", Text, nullable=False),
    Column("worker", String(255)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("error", Text),
    Column("flow_run_id", String(64)),
    Column("heartbeat_at", UTCDateTime),  # a worker's lease on the run (0005)
    Column("env", Text),  # its --env values, a JSON object (0007); null before 0007
    Column("retry_of", Integer),  # the number of the run it retries (cicd retry, 0007)
    UniqueConstraint("pipeline", "number"),
    # keyset pages of runs, newest first, of one pipeline or one status (migration 0004)
    Index("ix_pipeline_runs_pipeline_id", "pipeline", "id"),
    Index("ix_pipeline_runs_status_id", "status", "id"),
)

stage_runs = Table(
    "stage_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("pipeline_runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    UniqueConstraint("run_id", "name"),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "stage_run_id",
        Integer,
        ForeignKey("stage_runs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("run_id", Integer, ForeignKey("pipeline_runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("allow_failure", Boolean, nullable=False),
    Column("exit_code", Integer),
    Column("image", Text, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("log_path", Text),
    Column("worker", String(255)),
    Column("allowed", Boolean, nullable=False, server_default=false()),  # an allowed failure
    # its JUnit reports (artifacts:reports:junit); all null when it left none
    Column("tests_total", Integer),
    Column("tests_failed", Integer),
    Column("tests_errors", Integer),
    Column("tests_skipped", Integer),
    Column("tests_time", Float),
    Column("tests_failed_names", Text),  # a JSON list of at most 50 names
    # what its container used (0006); null when not measured
    Column("memory_peak_bytes", BigInteger),
    Column("cpu_seconds", Float),
    # the jobs it waited for, a JSON list (0006); null: no `needs` keyword (stage order)
    Column("needs", Text),
    # REUSED: the number of the run (same pipeline) that really ran it (cicd retry, 0007)
    Column("reused_from", Integer),
    UniqueConstraint("run_id", "name"),
)

# Each JUnit test case's outcome per job run (0006), for flaky tests; bounded per job run
# (MAX_TEST_CASES in backend/store/tests.py).
test_cases = Table(
    "test_cases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "job_run_id",
        Integer,
        ForeignKey("job_runs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(500), nullable=False),  # classname.name, cut to 500 characters
    Column("outcome", String(8), nullable=False),  # passed | failed | error | skipped
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_run_id", Integer, ForeignKey("job_runs.id", ondelete="CASCADE"), nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("stored_path", Text, nullable=False),
    Column("name", String(255)),  # artifacts:name, the download archive's name
    Column("expires_at", UTCDateTime, index=True),  # artifacts:expire_in; None: kept
    Column("kind", String(16), nullable=False, server_default="file"),  # file | dotenv
    UniqueConstraint("job_run_id", "path"),
)

# Webhook deliveries already handled, so that a redelivery starts nothing (migration 0004).
# Bounded: backend/webhooks.py keeps the newest MAX_DELIVERIES rows.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("provider", String(16), nullable=False),  # gitlab | github
    Column("delivery", String(200), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("runs", Text, nullable=False),  # JSON list of the NAME#N it started
    UniqueConstraint("provider", "delivery"),
)
