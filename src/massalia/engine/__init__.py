"""Engines: DuckDB (embedded default), PostgreSQL (shared server) and Spark (distributed)."""

from __future__ import annotations

from massalia.engine.base import (
    HOUSE_DIALECT,
    Capabilities,
    Column,
    Engine,
    EngineError,
    UnsupportedOperation,
    check_identifier,
)
from massalia.engine.registry import ENGINES, EngineOptions, connect, engine_factory, register_engine

__all__ = [
    "ENGINES",
    "HOUSE_DIALECT",
    "Capabilities",
    "Column",
    "Engine",
    "EngineError",
    "EngineOptions",
    "UnsupportedOperation",
    "check_identifier",
    "connect",
    "engine_factory",
    "register_engine",
]
