"""Open the warehouse engine configured for a ``MASSALIA_HOME``."""

from __future__ import annotations

import os
from typing import Any

from massalia.config import Home
from massalia.engine import Engine, connect

ENGINE_ENV = "MASSALIA_ENGINE"


def open_warehouse(home: Home, engine: str | None = None, **options: Any) -> Engine:
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
    if name == "duckdb":
        options.setdefault("path", home.warehouse)
    elif name == "spark":
        options.setdefault("warehouse_dir", home.root / "spark")
    return connect(name, **options)
