"""Creating and upgrading the governance tables in the metadata database."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from massalia.governance.tables import Base


def upgrade(engine: Engine) -> None:
    """Bring the governance tables of ``engine``'s database to the current schema (idempotent)."""
    Base.metadata.create_all(engine)
