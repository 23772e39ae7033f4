"""The history store: runs, stages, jobs and artifacts in SQLite or PostgreSQL.

The only package that imports SQLAlchemy. Use :class:`Store`; its schema is kept up to date by the
alembic migrations in ``migrations/``.
"""

from backend.store.store import Store

__all__ = ["Store"]
