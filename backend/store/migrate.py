"""Bring a history store's schema up to date with alembic, configured in code (no alembic.ini).

New revision (for developers), from the repository root::

    python -c "from backend.store.migrate import revision; revision('add a column')"
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from backend.store.engine import writing

MIGRATIONS = Path(__file__).parent / "migrations"

# Any constant works: it only has to be the same in every process that migrates.
_PG_MIGRATION_LOCK = 0x63696364  # "cicd"


def alembic_config() -> Config:
    """An alembic configuration pointing at this package's migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine) -> None:
    """Run every pending migration in one transaction; safe when many processes do it at once.

    On SQLite the write transaction's ``BEGIN IMMEDIATE`` serializes concurrent upgrades; on
    PostgreSQL a transaction-scoped advisory lock does.
    """
    config = alembic_config()
    with writing(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def revision(message: str) -> None:
    """Create an empty migration script in ``migrations/versions`` (a developer tool)."""
    command.revision(alembic_config(), message=message)
