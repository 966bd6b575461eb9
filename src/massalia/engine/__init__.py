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
from massalia.engine.registry import ENGINES, connect, register_engine

__all__ = [
    "ENGINES",
    "HOUSE_DIALECT",
    "Capabilities",
    "Column",
    "Engine",
    "EngineError",
    "UnsupportedOperation",
    "check_identifier",
    "connect",
    "register_engine",
]
