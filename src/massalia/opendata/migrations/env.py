"""Alembic environment of open data's tables, run programmatically by :data:`massalia.opendata.tables.MIGRATIONS`.

The caller passes an open SQLAlchemy connection in ``config.attributes["connection"]``. The version is kept in
``opendata_alembic_version``, apart from governance's and health's: each package upgrades its own tables.
"""

from __future__ import annotations

from alembic import context

from massalia.opendata.tables import VERSION_TABLE, OpenDataBase

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run open data's migrations through massalia.opendata.tables.MIGRATIONS.upgrade()")
context.configure(
    connection=connection,
    target_metadata=OpenDataBase.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
