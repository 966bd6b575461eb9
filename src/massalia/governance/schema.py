"""Creating and upgrading the governance tables in the metadata database, with Alembic.

The migrations live in ``massalia/governance/migrations/versions`` and run programmatically (no
``alembic.ini``); their version is kept in ``gov_alembic_version``. ``upgrade`` runs when a
:class:`~massalia.governance.Governance` opens the database and from ``massalia init``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "gov_alembic_version"
_lock = threading.Lock()


@dataclass(frozen=True)
class Migrations:
    """One package's Alembic history in the metadata database: its scripts folder and its own version table.

    Governance's tables are one history (:data:`GOVERNANCE`); a domain that keeps its own tables in the
    metadata database (health's saved cohort definitions) ships another, with another version table, so each
    package upgrades its tables without knowing the others'.
    """

    folder: Path
    version_table: str

    def config(self) -> Config:
        """The Alembic configuration of these migrations (no ``alembic.ini``)."""
        config = Config()
        config.set_main_option("script_location", str(self.folder))
        return config

    def head(self) -> str:
        """The newest migration's revision id."""
        head = ScriptDirectory.from_config(self.config()).get_current_head()
        if head is None:
            raise RuntimeError(f"no migration found in {self.folder}")
        return head

    def current(self, engine: Engine) -> str | None:
        """The revision the database is at (``None`` before the first migration)."""
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": self.version_table})
            return context.get_current_revision()

    def upgrade(self, engine: Engine, revision: str = "head") -> None:
        """Bring these tables of ``engine``'s database to ``revision`` (idempotent, cheap when current)."""
        if revision == "head" and self.current(engine) == self.head():
            return
        self._run(command.upgrade, engine, revision)

    def downgrade(self, engine: Engine, revision: str = "base") -> None:
        """Take these tables back to ``revision`` (``base``: drop them)."""
        self._run(command.downgrade, engine, revision)

    def _run(self, step: Callable[[Config, str], None], engine: Engine, revision: str) -> None:
        with _lock, engine.begin() as connection:
            config = self.config()
            config.attributes["connection"] = connection
            step(config, revision)


GOVERNANCE = Migrations(MIGRATIONS, VERSION_TABLE)
"""The governance tables' history (``gov_*``)."""


def alembic_config() -> Config:
    """The Alembic configuration of the governance migrations."""
    return GOVERNANCE.config()


def head_revision() -> str:
    """The newest governance migration's revision id."""
    return GOVERNANCE.head()


def current_revision(engine: Engine) -> str | None:
    """The revision the governance tables are at (``None`` before the first migration)."""
    return GOVERNANCE.current(engine)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the governance tables of ``engine``'s database to ``revision`` (idempotent, cheap when current)."""
    GOVERNANCE.upgrade(engine, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Take the governance tables back to ``revision`` (``base``: drop them)."""
    GOVERNANCE.downgrade(engine, revision)
