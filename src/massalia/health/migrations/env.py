"""Alembic environment of health's tables, run programmatically by :data:`massalia.health.saved_cohorts.MIGRATIONS`.

The caller passes an open SQLAlchemy connection in ``config.attributes["connection"]``. The version is kept in
``health_alembic_version``, apart from governance's ``gov_alembic_version``: each package upgrades its own tables.
"""

from __future__ import annotations

from alembic import context

from massalia.health.saved_cohorts import VERSION_TABLE, HealthBase

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run health's migrations through massalia.health.saved_cohorts.MIGRATIONS.upgrade()")
context.configure(
    connection=connection,
    target_metadata=HealthBase.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
