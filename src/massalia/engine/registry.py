"""Find an engine by name; built-in engines register the same way a plug-in would."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict, Unpack

from massalia.engine.base import Engine

EngineFactory = Callable[..., Engine]


class EngineOptions(TypedDict, total=False):
    """The keyword options of the built-in engines, so that a type checker refuses a name no engine takes.

    Each engine takes its own (the constructor's signature says which); a name outside this list (once,
    ``warehouse_dir`` for Spark) is a type error rather than a ``TypeError`` when the engine opens.
    """

    path: str | Path | None
    """DuckDB: the database file (in memory when ``None``)."""
    threads: int | None
    """DuckDB: worker threads."""
    memory_limit: str | None
    """DuckDB: memory cap, e.g. ``"2GB"``."""
    read_only: bool
    """DuckDB: open the file read-only."""
    dsn: str | None
    """PostgreSQL: the connection string (default ``$MASSALIA_PG_DSN``)."""
    schema: str | None
    """PostgreSQL: the working schema."""
    session: Any
    """Spark: an existing SparkSession (``Any``: pyspark is an optional extra)."""
    database: str | None
    """Spark: the working database."""
    folder: str | Path | None
    """Spark: where a session built by the engine keeps its warehouse and metastore."""


ENGINES: dict[str, str | EngineFactory] = {
    "duckdb": "massalia.engine.duckdb:DuckDBEngine",
    "postgres": "massalia.engine.postgres:PostgresEngine",
    "spark": "massalia.engine.spark:SparkEngine",
}
"""Engine name → factory, or ``"module:attribute"`` imported on first use (optional extras)."""


def register_engine(name: str, factory: str | EngineFactory) -> None:
    """Register an engine factory under ``name`` (used by extensions and built-ins alike)."""
    ENGINES[name] = factory


def connect(name: str = "duckdb", **options: Unpack[EngineOptions]) -> Engine:
    """Open an engine by name.

    Examples
    --------
    >>> engine = connect("duckdb")
    >>> engine.scalar("SELECT 40 + 2")
    42
    """
    return engine_factory(name)(**options)


def engine_factory(name: str) -> EngineFactory:
    """The factory registered under ``name``, its module imported on first use.

    Raises
    ------
    ValueError
        No engine has that name, or its optional dependency is not installed.
    """
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; known engines: {', '.join(sorted(ENGINES))}") from None
    if isinstance(factory, str):
        module_name, _, attribute = factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(
                f"engine {name!r} needs an optional dependency ({error.name}); "
                f"install it with: pip install 'massalia[{name}]'"
            ) from error
        factory = getattr(module, attribute)
        ENGINES[name] = factory
    return factory
