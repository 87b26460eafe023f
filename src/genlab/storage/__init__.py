"""Shared state in a database: SQLAlchemy 2 models, Alembic migrations, SQLite (WAL) by default,
PostgreSQL through ``GENLAB_DATABASE_URL``.

Room ``storage``: may import ``core`` and ``codecs``; the review queue over it lives in ``safety``."""

from genlab.storage.db import Store, database_url

__all__ = ["Store", "database_url"]
