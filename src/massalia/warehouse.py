"""Open the warehouse engine configured for a ``MASSALIA_HOME``."""

from __future__ import annotations

import os
from typing import Any

from massalia.config import Home
from massalia.engine import Engine, connect_for_home

ENGINE_ENV = "MASSALIA_ENGINE"


def open_warehouse(home: Home, engine: str | None = None, *, create: bool = False, **options: Any) -> Engine:
    """Open the warehouse of ``home`` on ``engine``.

    The engine is ``engine``, else ``$MASSALIA_ENGINE``, else the one recorded when the home was
    initialized, else ``duckdb``. Each engine opens itself from the home (``Engine.for_home``):
    DuckDB keeps the warehouse in ``home.warehouse``; PostgreSQL reads its DSN from
    ``options["dsn"]`` or ``$MASSALIA_PG_DSN``; Spark keeps its tables under ``home.root / "spark"``
    (or works in ``options["session"]``).

    Parameters
    ----------
    create
        Commands that make a home (``init``, ``load``, ``demo``) pass ``True``; every other caller
        gets :class:`~massalia.config.HomeNotInitializedError` for a folder that was never
        initialized, before anything is created there (a mistyped ``--home`` stays a mistake).

    Examples
    --------
    >>> from pathlib import Path
    >>> from massalia.config import Home
    >>> with open_warehouse(Home(Path("/tmp/massalia-doctest")).ensure(), create=True) as engine:
    ...     engine.name
    'duckdb'
    """
    if not create:
        home.require_initialized()
    name = engine or os.environ.get(ENGINE_ENV) or home.engine or "duckdb"
    return connect_for_home(name, home.root, **options)
