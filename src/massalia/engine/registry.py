"""Find an engine by name; built-in engines register the same way a plug-in would."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from massalia.engine.base import Engine

EngineFactory = Callable[..., Engine]

ENGINES: dict[str, str | EngineFactory] = {
    "duckdb": "massalia.engine.duckdb:DuckDBEngine",
    "postgres": "massalia.engine.postgres:PostgresEngine",
    "spark": "massalia.engine.spark:SparkEngine",
}
"""Engine name → factory, or ``"module:attribute"`` imported on first use (optional extras)."""


def register_engine(name: str, factory: str | EngineFactory) -> None:
    """Register an engine factory under ``name`` (used by extensions and built-ins alike)."""
    ENGINES[name] = factory


def connect(name: str = "duckdb", **options: Any) -> Engine:
    """Open an engine by name.

    Examples
    --------
    >>> engine = connect("duckdb")
    >>> engine.scalar("SELECT 40 + 2")
    42
    """
    return _factory(name)(**options)


def connect_for_home(name: str, root: str | Path, **options: Any) -> Engine:
    """Open engine ``name`` for the home folder ``root`` (each engine knows what it keeps there).

    Engine classes open themselves with ``for_home``; a plain factory registered by an extension
    is called with ``options`` alone.

    Examples
    --------
    >>> import tempfile
    >>> with connect_for_home("duckdb", tempfile.mkdtemp()) as engine:
    ...     engine.path.endswith("warehouse.duckdb")
    True
    """
    factory = _factory(name)
    if isinstance(factory, type) and issubclass(factory, Engine):
        return factory.for_home(Path(root), **options)
    engine = factory(**options)
    if not isinstance(engine, Engine):
        raise TypeError(f"engine factory {name!r} returned {type(engine).__name__}, not an Engine")
    return engine


def _factory(name: str) -> EngineFactory:
    """The factory registered as ``name``, imported on first use."""
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
