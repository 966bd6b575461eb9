"""Creating and upgrading the governance tables in the metadata database, with Alembic.

The migrations live in ``massalia/governance/migrations/versions`` and run programmatically (no
``alembic.ini``); their version is kept in ``gov_alembic_version``. ``upgrade`` runs when a
:class:`~massalia.governance.Governance` opens the database and from ``massalia init``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "gov_alembic_version"
_lock = threading.Lock()


def alembic_config() -> Config:
    """The Alembic configuration of the governance migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest migration's revision id."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no governance migration found in {MIGRATIONS}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the governance tables of ``engine``'s database to ``revision`` (idempotent, cheap when current)."""
    if revision == "head" and current_revision(engine) == head_revision():
        return
    with _lock, engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Take the governance tables back to ``revision`` (``base``: drop them)."""
    with _lock, engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
