"""Engines: DuckDB (embedded default), PostgreSQL (shared server) and Spark (distributed)."""

from __future__ import annotations

from massalia.engine.base import (
    HOUSE_DIALECT,
    Capabilities,
    Column,
    Engine,
    EngineError,
    QueryTimeoutError,
    UnsupportedOperation,
    WarehouseBusyError,
    check_identifier,
    hold_open,
)
from massalia.engine.registry import ENGINES, connect, connect_for_home, register_engine

__all__ = [
    "ENGINES",
    "HOUSE_DIALECT",
    "Capabilities",
    "Column",
    "Engine",
    "EngineError",
    "QueryTimeoutError",
    "UnsupportedOperation",
    "WarehouseBusyError",
    "check_identifier",
    "connect",
    "connect_for_home",
    "hold_open",
    "register_engine",
]
