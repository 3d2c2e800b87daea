"""Alembic environment: runs on the connection ModelRegistry passes in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from lume_platform.registry.schema import Base

VERSION_TABLE = "lume_registry_version"

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the registry migrations through lume_platform.registry.ModelRegistry.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # Our own name, so the registry can share a database with another Alembic-managed application.
    version_table=VERSION_TABLE,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
