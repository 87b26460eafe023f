"""Alembic environment: genlab runs migrations programmatically on a connection it passes in."""

from alembic import context

from genlab.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - genlab always passes a connection
    raise RuntimeError("run migrations through genlab.storage.db.migrate()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
