"""Open the warehouse engine configured for a ``MASSALIA_HOME``."""

from __future__ import annotations

import os
from typing import Unpack

from massalia.config import Home
from massalia.engine import Engine, EngineOptions, connect

ENGINE_ENV = "MASSALIA_ENGINE"


def open_warehouse(home: Home, engine: str | None = None, **options: Unpack[EngineOptions]) -> Engine:
    """Open the warehouse of ``home`` on ``engine`` (default ``$MASSALIA_ENGINE`` or ``duckdb``).

    DuckDB keeps the warehouse in ``home.warehouse``; PostgreSQL reads its DSN from
    ``options["dsn"]`` or ``$MASSALIA_PG_DSN``; Spark keeps its tables under ``home.root / "spark"``.

    Examples
    --------
    >>> from pathlib import Path
    >>> from massalia.config import Home
    >>> with open_warehouse(Home(Path("/tmp/massalia-doctest")).ensure()) as engine:
    ...     engine.name
    'duckdb'
    """
    name = engine or os.environ.get(ENGINE_ENV) or "duckdb"
    return connect(name, **warehouse_options(home, name, **options))


def warehouse_options(home: Home, name: str, **options: Unpack[EngineOptions]) -> EngineOptions:
    """The options ``open_warehouse`` passes to engine ``name``: ``options`` plus where ``home`` keeps its data.

    Examples
    --------
    >>> from pathlib import Path
    >>> warehouse_options(Home(Path("/srv/massalia")), "spark")
    {'folder': PosixPath('/srv/massalia/spark')}
    """
    # Typed keys (EngineOptions): a name the engine does not take is a type error, not a crash at start-up.
    if name == "duckdb":
        options.setdefault("path", home.warehouse)
    elif name == "spark":
        options.setdefault("folder", home.root / "spark")
    return options
