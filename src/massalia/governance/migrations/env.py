"""Alembic environment of the governance tables, run programmatically by ``massalia.governance.schema``.

The caller passes an open SQLAlchemy connection in ``config.attributes["connection"]``. The version is
kept in ``gov_alembic_version`` so other packages may keep their own Alembic history in the same database.
"""

from __future__ import annotations

from alembic import context

from massalia.governance.tables import Base

VERSION_TABLE = "gov_alembic_version"

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the governance migrations through massalia.governance.schema.upgrade()")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
