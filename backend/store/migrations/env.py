"""Alembic environment of the history store.

Migrations run only through :func:`backend.store.migrate.upgrade`, which hands over an open
connection (``config.attributes["connection"]``) inside a transaction it owns; the same code path
serves SQLite and PostgreSQL. There is no offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context

from backend.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the history store migrations run only through backend.store.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
